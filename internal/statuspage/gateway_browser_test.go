package statuspage_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gpulock/gpulock/internal/cluster"
	"github.com/gpulock/gpulock/internal/gateway"
	"github.com/gpulock/gpulock/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGatewayPageInChromium loads a gateway's /gpulock/ (the same page fed
// by the gateway's data model) and checks that it renders the cluster's
// GPUs and line, with no console error.
func TestGatewayPageInChromium(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := cluster.Dial(rs.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := cluster.NewStore(rdb)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	require.NoError(t, st.Register(ctx, cluster.GPUID("alpha", 0, "comfyui"), "comfyui", "tok", "http://127.0.0.1:3188", time.Minute))
	require.NoError(t, st.Register(ctx, cluster.GPUID("beta", 1, "comfyui"), "comfyui", "tok", "http://127.0.0.2:3188", time.Minute))
	m, err := st.Enqueue(ctx, "comfyui", "job-<b>1</b>", cluster.Turn{}, 0, time.Second)
	require.NoError(t, err)
	require.Equal(t, cluster.StateWaiting, m.State)
	g, err := gateway.New(gateway.Config{Profile: "comfyui", Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	front := httptest.NewServer(g)
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
		g.Close()
	})

	tb := newTab(t, browser(t))
	tb.run(t, chromedp.Navigate(front.URL+"/gpulock/"), chromedp.WaitVisible(chromedp.CSS("#gpus .card")))
	tb.waitJS(t, "both GPUs", `document.querySelectorAll("#gpus .card").length === 2`)
	tb.waitJS(t, "the waiting job", rowWith("#line tbody tr", "job-<b>1</b>"))
	tb.waitJS(t, "a live connection", `document.getElementById("conn").classList.contains("live")`)
	host := value(t, tb, chromedp.TextContent(chromedp.CSS("#host")))
	assert.Contains(t, host, "gateway")
	url := value(t, tb, chromedp.Evaluate[string](`document.querySelector('#gpus .card[data-gpu="alpha/0/comfyui"] [data-url]').dataset.url`))
	assert.Equal(t, "http://127.0.0.1:3188", url, "a loopback caller sees the advertise URL")
	state := value(t, tb, chromedp.Evaluate[string](`document.querySelector('#gpus .card[data-gpu="alpha/0/comfyui"] .state').dataset.state`))
	assert.Equal(t, "idle", state, "registered, never offered: the View's state")
	tb.screenshot(t, "gateway-page.png")
	tb.noErrors(t)
}
