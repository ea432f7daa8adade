package shim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawConn is a raw TCP connection to a test server, for requests that
// net/http's client will not send (malformed chunking, a body cut short).
type rawConn struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

// dialRaw connects to the server at base (an http:// URL).
func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(eventTimeout)))
	return &rawConn{t: t, Conn: conn, br: bufio.NewReader(conn)}
}

// send writes s as it is.
func (c *rawConn) send(s string) {
	c.t.Helper()
	_, err := io.WriteString(c.Conn, s)
	require.NoError(c.t, err)
}

// halfClose closes the sending side: the server sees the body end.
func (c *rawConn) halfClose() {
	c.t.Helper()
	require.NoError(c.t, c.Conn.(*net.TCPConn).CloseWrite())
}

// response reads one response and its body.
func (c *rawConn) response() (*http.Response, []byte) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, body
}

// closed waits until the server closes the connection, and says so.
func (c *rawConn) closed() bool {
	_, err := c.br.ReadByte()
	return err == io.EOF
}

// shimError decodes the shim's JSON error body, failing if it is not one.
func shimError(t *testing.T, body []byte) errorDetail {
	t.Helper()
	var doc errorBody
	require.NoError(t, json.Unmarshal(body, &doc), "the shim's JSON error, got %q", body)
	require.Equal(t, "gpulock", doc.Error.Source)
	return doc.Error
}

// logBuffer collects a shim's log lines, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logTo makes a shim log to b.
func logTo(b *logBuffer) envOption {
	return func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(b, nil)) }
}

// badRequests returns the count of gpulock_shim_bad_requests_total for reason.
func badRequests(t *testing.T, s *Shim, reason string) float64 {
	t.Helper()
	return s.metrics.badRequests.WithLabelValues(reason).Value()
}
