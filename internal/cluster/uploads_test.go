package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUploadKeyNamesInputsOnly(t *testing.T) {
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"in.png", "input//in.png", true},
		{"sub/in.png", "input/sub/in.png", true},
		{"a/b/in.png [input]", "input/a/b/in.png", true},
		{"out.png [output]", "", false},
		{"t.png [temp]", "", false},
	}
	for _, tt := range tests {
		key, ok := UploadKey(tt.name)
		assert.Equal(t, tt.ok, ok, tt.name)
		if tt.ok {
			assert.Equal(t, tt.key, key, tt.name)
		}
	}
}

func TestDispatchNeedsTheUploadsAMachineLacksAndNewContentAgain(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	const had, lacks = "http://127.0.0.1:1", "http://127.0.0.1:2"
	key := FileKey("input", "", "in.png")
	require.NoError(t, s.KeepUpload(ctx, key, StoredUpload{Route: "/upload/image", ContentType: "multipart/form-data; boundary=x", Body: []byte("v1")}, []string{had}))
	names := []string{key, FileKey("input", "", "never.png")}

	_, missing, err := s.DispatchNeeds(ctx, "", had, names)
	require.NoError(t, err)
	assert.Empty(t, missing, "the machine that took it at upload time")
	_, missing, err = s.DispatchNeeds(ctx, "", lacks, names)
	require.NoError(t, err)
	assert.Equal(t, []string{key}, missing, "a machine that did not (and never the names nobody uploaded)")

	u, digest, found, err := s.LoadUpload(ctx, key)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, []byte("v1"), u.Body)
	require.NoError(t, s.UploadHad(ctx, lacks, key, digest))
	_, missing, err = s.DispatchNeeds(ctx, "", lacks, names)
	require.NoError(t, err)
	assert.Empty(t, missing)

	// New content under the same name: every machine needs it again, but
	// the one that took the new upload.
	require.NoError(t, s.KeepUpload(ctx, key, StoredUpload{Route: "/upload/image", Body: []byte("v2")}, []string{lacks}))
	_, missing, err = s.DispatchNeeds(ctx, "", had, names)
	require.NoError(t, err)
	assert.Equal(t, []string{key}, missing)

	listening, _, err := s.DispatchNeeds(ctx, "c", had, nil)
	require.NoError(t, err)
	assert.False(t, listening)
	require.NoError(t, s.MarkListening(ctx, "c", time.Minute))
	listening, _, err = s.DispatchNeeds(ctx, "c", had, nil)
	require.NoError(t, err)
	assert.True(t, listening)
}

func TestFeedDeliversAJoinedClientsFramesInOrder(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	got := make(chan [2]any, 16)
	feed := s.NewFeed(func(client string, f ClientFrame) { got <- [2]any{client, f} })
	defer feed.Close()
	require.NoError(t, feed.Join(ctx, "c"))
	require.NoError(t, s.PublishFrame(ctx, "other", false, []byte(`{"not":"mine"}`)))
	require.NoError(t, s.PublishFrame(ctx, "c", false, []byte(`{"type":"executing"}`)))
	require.NoError(t, s.PublishFrame(ctx, "c", true, []byte{0, 0, 0, 1}))
	_, err := s.AddPrompt(ctx, "p", "job", "gw", []byte(`{}`))
	require.NoError(t, err)
	require.NoError(t, feed.Leave(ctx, "c"))
	require.NoError(t, s.PublishFrame(ctx, "c", false, []byte(`{"type":"after leave"}`)))
	_, err = s.AddPrompt(ctx, "q", "job2", "gw", []byte(`{}`))
	require.NoError(t, err) // a line hint after the leave: it marks the end
	want := [][2]any{
		{"c", ClientFrame{Data: []byte(`{"type":"executing"}`)}},
		{"c", ClientFrame{Binary: true, Data: []byte{0, 0, 0, 1}}},
		{"", ClientFrame{Line: true}},
		{"", ClientFrame{Line: true}},
	}
	for _, w := range want {
		select {
		case f := <-got:
			assert.Equal(t, w, f)
		case <-time.After(5 * time.Second): // a bound on a wait, not synchronisation
			t.Fatal("no frame within 5 s")
		}
	}
	left, err := s.PromptsRemaining(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), left)
}

// TestBoundUploadsEvictsTheOldestFirst keeps three uploads of 100 bytes and
// bounds them to 250: the oldest goes, with its digest, and nothing else;
// an upload that expired is forgotten without counting as evicted.
func TestBoundUploadsEvictsTheOldestFirst(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	keys := []string{FileKey("input", "", "a.png"), FileKey("input", "", "b.png"), FileKey("input", "", "c.png")}
	for i, k := range keys {
		require.NoError(t, s.KeepUpload(ctx, k, StoredUpload{Route: "/upload/image", Body: bytes.Repeat([]byte{byte(i)}, 100)}, nil))
		// Distinct times: the score is the keeping's millisecond.
		require.NoError(t, s.rdb.ZIncrBy(ctx, keyCUpAge, float64(i*1000), k).Err())
	}
	ev, err := s.BoundUploads(ctx, 250)
	require.NoError(t, err)
	assert.Equal(t, []Evicted{{Key: keys[0], Bytes: 100}}, ev)
	_, _, found, err := s.LoadUpload(ctx, keys[0])
	require.NoError(t, err)
	assert.False(t, found, "the oldest evicted")
	for _, k := range keys[1:] {
		_, _, found, err := s.LoadUpload(ctx, k)
		require.NoError(t, err)
		assert.True(t, found, k)
	}
	ev, err = s.BoundUploads(ctx, 250)
	require.NoError(t, err)
	assert.Empty(t, ev, "within the bound")

	require.NoError(t, s.rdb.Del(ctx, keyCUpload(keys[1])).Err()) // as if expired
	ev, err = s.BoundUploads(ctx, 100)
	require.NoError(t, err)
	assert.Empty(t, ev, "an expired upload is not evicted, and frees its bytes")
	n, err := s.rdb.HLen(ctx, keyCUpSize).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "only the last upload is counted")
}
