package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/fakecomfy"
	"github.com/gpulock/gpulock/internal/shim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Timing of the browser tests: every wait has this bound.
const (
	browserTimeout = 30 * time.Second
	pollEvery      = 25 * time.Millisecond
	// stepDuration × jobSteps is how long the fake ComfyUI runs the job:
	// long enough for the page to show it running.
	stepDuration = 50 * time.Millisecond
	jobSteps     = 30
)

// artifactDirEnv names the directory for screenshots (default: a temp dir).
const artifactDirEnv = "GPULOCK_ARTIFACTS"

// findChromium returns Chromium's path. It fails the test when CI=true and
// there is none, and skips it otherwise.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("statuspage: chromium is missing; install it (apt-get install chromium), .ci/run does")
	}
	t.Skip("chromium not found; the browser tests need it")
	return ""
}

// browser starts one headless Chromium for the whole test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.NoSandbox, // we run as root
		chromedp.Flag("headless", true),
		chromedp.DisableGPU,
		chromedp.WindowSize(1100, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	require.NoError(t, chromedp.Do(bctx), "start chromium")
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// tab is one browser tab that records console errors, exceptions and
// error log entries (CSP violations land there).
type tab struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newTab(t *testing.T, bctx context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	tb := &tab{ctx: ctx}
	require.NoError(t, chromedp.Do(ctx), "open a tab")
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				tb.errors = append(tb.errors, "console: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			tb.errors = append(tb.errors, "exception: "+msg)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				tb.errors = append(tb.errors, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	}))
	_, err := chromedp.Call(ctx, log.Enable, cdp.Empty{})
	require.NoError(t, err)
	return tb
}

// run runs actions in the tab, bounded by browserTimeout.
func (tb *tab) run(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...))
}

// value runs one action that returns a value, bounded by browserTimeout.
func value[T any](t *testing.T, tb *tab, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

// waitJS waits until the JavaScript expression is true.
func (tb *tab) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(pollEvery)))
	require.NoError(t, err, "waiting for %s", what)
}

// noErrors checks that the tab logged no error but those that contain
// one of expected.
func (tb *tab) noErrors(t *testing.T, expected ...string) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var unexpected []string
	for _, e := range tb.errors {
		if !slices.ContainsFunc(expected, func(x string) bool { return strings.Contains(e, x) }) {
			unexpected = append(unexpected, e)
		}
	}
	assert.Empty(t, unexpected, "the page logs no errors")
}

// screenshot saves the tab's page as name in the artifact directory.
func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(artifactDirEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	png := value(t, tb, chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// startShim starts a shim of profile in front of upstream.
func startShim(t *testing.T, lockDir, profile, upstream string) (*shim.Shim, string) {
	t.Helper()
	p, err := shim.LookupProfile(profile)
	require.NoError(t, err)
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	s, err := shim.New(shim.Config{Upstream: u, GPU: 0, LockDir: lockDir, Profile: p,
		WatchInterval: 50 * time.Millisecond, PageProbeEvery: 200 * time.Millisecond, PageBucket: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	s.Start()
	front := httptest.NewServer(s)
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
		ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, front.URL
}

// jsString renders s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowWith is a JavaScript test that a row of the table (or job of the
// list) under selector carries the client, and has no element injected.
func rowWith(selector, client string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.dataset.client === %s)`, jsString(selector), jsString(client))
}

func TestPageInChromium(t *testing.T) {
	bctx := browser(t)

	t.Run("a job moves from the line to running to done without a reload", func(t *testing.T) {
		comfy, err := fakecomfy.New(fakecomfy.Config{StepDuration: stepDuration})
		require.NoError(t, err)
		t.Cleanup(func() { comfy.Close() })
		backend := httptest.NewServer(comfy)
		t.Cleanup(backend.Close)
		lockDir := t.TempDir()
		s, front := startShim(t, lockDir, "comfyui", backend.URL)
		tb := newTab(t, bctx)
		tb.run(t, chromedp.Navigate(front+"/gpulock/"), chromedp.WaitVisible(chromedp.CSS("#gpus .card")))
		value(t, tb, chromedp.Evaluate[any](`window.marker = "same page"`))

		held, err := s.Lock().TryAcquire() // the GPU is busy: the job waits in line
		require.NoError(t, err)
		const client = `<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">`
		body, err := json.Marshal(map[string]any{"prompt": fakecomfy.TextToImagePrompt(jobSteps, 1), "client_id": client})
		require.NoError(t, err)
		answered := make(chan error, 1)
		go func() {
			resp, err := http.Post(front+"/prompt", "application/json", strings.NewReader(string(body)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			answered <- err
		}()

		tb.waitJS(t, "the job in the line", rowWith("#line tbody tr", client))
		text := value(t, tb, chromedp.TextContent(chromedp.CSS("#line tbody tr td.client")))
		assert.Equal(t, client, text, "the malicious client_id shows as text")
		tb.screenshot(t, "status-page-line.png")

		// The page and `gpulock status` (gpulock.ListStatus) agree on the
		// holder, since when, and how many wait.
		cli, err := gpulock.ListStatus(lockDir)
		require.NoError(t, err)
		require.Len(t, cli, 1)
		require.NotNil(t, cli[0].Holder)
		tb.waitJS(t, "the page to show the waiters the lock files show",
			fmt.Sprintf(`document.querySelector("#gpus .state").dataset.waiters === "%d"`, len(cli[0].Waiters)))
		card := value(t, tb, chromedp.Evaluate[map[string]string](`({...document.querySelector("#gpus .state").dataset})`))
		assert.Equal(t, strconv.Itoa(cli[0].Holder.PID), card["pid"])
		assert.Equal(t, cli[0].Holder.Service, card["service"])
		since, err := time.Parse(time.RFC3339Nano, card["since"])
		require.NoError(t, err)
		assert.True(t, cli[0].Holder.Since.Equal(since), "since: page %s, lock file %s", since, cli[0].Holder.Since)

		require.NoError(t, held.Release())
		tb.waitJS(t, "the job running", rowWith("#running .job", client))
		tb.waitJS(t, "the job done", rowWith(`#recent tbody tr[data-result="done"]`, client))
		select {
		case err := <-answered:
			require.NoError(t, err)
		case <-time.After(browserTimeout):
			t.Fatal("the prompt was never answered")
		}

		pwned := value(t, tb, chromedp.Evaluate[any](`window.pwned === undefined ? null : window.pwned`))
		marker := value(t, tb, chromedp.Evaluate[string](`window.marker`))
		injected := value(t, tb, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`))
		assert.Nil(t, pwned, "the client_id's script never ran")
		assert.Zero(t, injected, "no element came from the client_id")
		assert.Equal(t, "same page", marker, "no reload happened")
		tb.screenshot(t, "status-page-done.png")
		tb.noErrors(t)
	})

	t.Run("the page renders with the backend down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		down := "http://" + ln.Addr().String()
		require.NoError(t, ln.Close()) // nothing listens there now
		_, front := startShim(t, t.TempDir(), "comfyui", down)
		tb := newTab(t, bctx)
		tb.run(t, chromedp.Navigate(front+"/gpulock/"))
		tb.waitJS(t, "the backend-down banner", `document.querySelector('#banners .banner[data-kind="backend_down"]') !== null`)
		banner := value(t, tb, chromedp.TextContent(chromedp.CSS(`#banners .banner`)))
		tb.run(t, chromedp.WaitVisible(chromedp.CSS("#gpus .card")))
		assert.Contains(t, banner, "does not answer")
		tb.screenshot(t, "status-page-backend-down.png")
		tb.noErrors(t)
	})

	t.Run("the page fits a phone and follows the dark scheme", func(t *testing.T) {
		comfy, err := fakecomfy.New(fakecomfy.Config{StepDuration: stepDuration})
		require.NoError(t, err)
		t.Cleanup(func() { comfy.Close() })
		backend := httptest.NewServer(comfy)
		t.Cleanup(backend.Close)
		_, front := startShim(t, t.TempDir(), "comfyui", backend.URL)
		tb := newTab(t, bctx)
		const phoneWidth = 390
		tb.run(t, chromedp.EmulateViewport(phoneWidth, 844, chromedp.EmulateMobile),
			chromedp.Navigate(front+"/gpulock/"), chromedp.WaitVisible(chromedp.CSS("#gpus .card")))
		width := value(t, tb, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		assert.LessOrEqual(t, width, phoneWidth, "no sideways scrolling on a phone")
		const background = `getComputedStyle(document.body).backgroundColor`
		light := value(t, tb, chromedp.Evaluate[string](background))
		tb.screenshot(t, "status-page-phone.png")

		ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
		defer cancel()
		_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		require.NoError(t, err)
		dark := value(t, tb, chromedp.Evaluate[string](background))
		assert.NotEqual(t, light, dark, "the dark scheme has its own colours")
		tb.screenshot(t, "status-page-phone-dark.png")
		tb.noErrors(t)
	})

	t.Run("the page falls back to polling without events", func(t *testing.T) {
		comfy, err := fakecomfy.New(fakecomfy.Config{StepDuration: stepDuration})
		require.NoError(t, err)
		t.Cleanup(func() { comfy.Close() })
		backend := httptest.NewServer(comfy)
		t.Cleanup(backend.Close)
		_, front := startShim(t, t.TempDir(), "comfyui", backend.URL)
		// A proxy in front that refuses the event stream, as a buffering
		// proxy might be configured to.
		target, err := url.Parse(front)
		require.NoError(t, err)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/gpulock/events" {
				http.Error(w, "no streams here", http.StatusServiceUnavailable)
				return
			}
			r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
			r.RequestURI = ""
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		}))
		t.Cleanup(proxy.Close)
		tb := newTab(t, bctx)
		tb.run(t, chromedp.Navigate(proxy.URL+"/gpulock/"))
		tb.waitJS(t, "the page polling", `document.getElementById("conn").textContent.startsWith("live (polling)")`)
		tb.run(t, chromedp.WaitVisible(chromedp.CSS("#gpus .card")))
		tb.noErrors(t, "/gpulock/events") // the refused stream, on purpose
	})
}
