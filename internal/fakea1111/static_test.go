package fakea1111

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// httptestServer serves h on loopback until the test ends and returns its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// postTo posts a JSON body to url.
func postTo(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestStaticRoutes(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		path string
		code int
		has  string
	}{
		{"/", 200, "Stable Diffusion"},
		{"/sdapi/v1/sd-models", 200, "v1-5-pruned-emaonly"},
		{"/sdapi/v1/samplers", 200, "Euler a"},
		{"/sdapi/v1/options", 200, "sd_model_checkpoint"},
		{"/sdapi/v1/memory", 200, `"cuda"`},
		{"/sdapi/v1/progress", 200, `"job_count":0`},
		{"/sdapi/v1/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(f.ts.URL + tt.path)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.code, resp.StatusCode)
			assert.Contains(t, string(body), tt.has)
		})
	}
}

func TestCloseStopsJobs(t *testing.T) {
	f := newFixture(t, nil)
	local := f.srv.StartLocalJob(longSteps)
	queued := f.srv.StartLocalJob(longSteps)
	f.waitSampling(t, "agent_scheduler")
	require.NoError(t, f.srv.Close())
	require.NoError(t, await(t, local))
	require.NoError(t, await(t, queued))
	require.ErrorIs(t, await(t, f.srv.StartLocalJob(1)), ErrClosed)
	st, err := f.gpu.Stats()
	require.NoError(t, err)
	assert.Empty(t, st.Running)
}
