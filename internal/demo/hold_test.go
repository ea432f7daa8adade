package demo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a bytes.Buffer safe to write and read at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var pageURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+/gpulock/`)

func TestDemoPrintsThePageAndHoldsItOpen(t *testing.T) {
	var out lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{JobsPerService: 2, Clients: 1, Step: 2 * time.Millisecond, Out: &out, Dir: t.TempDir(), Hold: true})
		ran <- err
	}()
	require.Eventually(t, func() bool { return bytes.Contains([]byte(out.String()), []byte("stay open (--hold)")) },
		time.Minute, 10*time.Millisecond, "the demo ends and holds: %s", out.String())
	u := pageURL.FindString(out.String())
	require.NotEmpty(t, u, "the demo prints the status page's URL")

	resp, err := http.Get(u)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "gpulock status", "the page is still served after the load")

	cancel()
	select {
	case err := <-ran:
		assert.NoError(t, err, "ending a hold is no failure")
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop when its context ended")
	}
}
