package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFrontIsHonouredOnlyAboveNormalPriority(t *testing.T) {
	e := newComfyCluster(t, 1, nil, func(c *Config) { c.Turns.PriorityHeader = true })
	gw := e.gateways["comfyui"].URL
	waitFor(t, "a free GPU", func() bool { return e.freeCount(t, "comfyui") == 1 })
	long, _ := submitWith(t, gw, modelPrompt(longSteps, 1, "a", "x"), nil)
	waitRunningAt(t, e, gw, long)
	first, h := submitWith(t, gw, modelPrompt(1, 2, "b", "x"), nil)
	assert.Empty(t, h.Get(HeaderFront), "no front asked, nothing said")
	second, _ := submitWith(t, gw, modelPrompt(1, 3, "c", "x"), nil)
	frontBody := func(seed int64, client string) string {
		b := modelPrompt(1, seed, client, "x")
		return b[:len(b)-1] + `,"front":true}`
	}
	ignored, h := submitWith(t, gw, frontBody(4, "d"), nil)
	assert.True(t, strings.HasPrefix(h.Get(HeaderFront), "ignored; "), h.Get(HeaderFront))
	honoured, h := submitWith(t, gw, frontBody(5, "e"), map[string]string{"X-GPULock-Priority": "high"})
	assert.Equal(t, "honoured", h.Get(HeaderFront))

	for id, want := range map[string]int64{honoured: 1, first: 2, second: 3, ignored: 4} {
		st, _ := promptState(t, gw, id)
		require.Equal(t, "waiting", st.State, id)
		require.NotNil(t, st.Position)
		assert.Equal(t, want, *st.Position, "place of %s", id)
	}
	hst, _ := promptState(t, gw, honoured)
	assert.Negative(t, hst.Number, "numbered as ComfyUI numbers a front prompt")
	q := getQueue(t, gw)
	assert.Equal(t, []string{honoured, first, second, ignored}, q.ids(q.Pending), "/queue lists the line's order")

	code, _, body := post(t, gw+"/interrupt", `{"prompt_id":"`+long+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	// The GPU ran them in that order.
	var last time.Time
	for _, id := range []string{honoured, first, second, ignored} {
		st := waitState(t, gw, id, "done")
		require.NotNil(t, st.Since)
		assert.True(t, st.Since.After(last), "%s dispatched after the one before", id)
		last = *st.Since
	}
}
