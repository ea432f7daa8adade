package execcmd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/gpulock/gpulock/internal/deadwait"
	"golang.org/x/sys/unix"
)

// errBackendDown says the backend refused the connection: nothing listens.
var errBackendDown = fmt.Errorf("execcmd: the backend is not listening (%w)", deadwait.ErrDown)

// maxAnswerHead bounds an answer's status line and headers.
const maxAnswerHead = 64 << 10

// loopGet sends `GET uri HTTP/1.0` with Host host to the first of addrs
// that accepts the connection, and returns the answer's status and body
// (at most maxDeadHolderAnswer bytes), all before deadline. HTTP/1.0 keeps
// the answer simple: no keep-alive, and a body that ends with the
// connection or its Content-Length (a chunked one is decoded too). All
// addresses refusing gives errBackendDown.
func loopGet(addrs []netip.AddrPort, host, uri string, deadline time.Time) (int, []byte, error) {
	var err error
	for _, a := range addrs {
		var fd int
		fd, err = dialLoop(a, deadline)
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		defer syscall.Close(fd)
		req := "GET " + uri + " HTTP/1.0\r\nHost: " + host + "\r\nAccept: application/json\r\nUser-Agent: gpulock-exec\r\n\r\n"
		if err := writeAll(fd, []byte(req), deadline); err != nil {
			return 0, nil, err
		}
		raw, err := readAll(fd, maxAnswerHead+maxDeadHolderAnswer, deadline)
		if err != nil {
			return 0, nil, err
		}
		return parseAnswer(raw)
	}
	return 0, nil, fmt.Errorf("%w: %v", errBackendDown, err)
}

// dialLoop connects a non-blocking TCP socket to a before deadline.
func dialLoop(a netip.AddrPort, deadline time.Time) (int, error) {
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if a.Addr().Is4() {
		sa = &syscall.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	}
	fd, err := streamSocket(family)
	if err != nil {
		return -1, fmt.Errorf("execcmd: socket: %w", err)
	}
	err = syscall.Connect(fd, sa)
	if errors.Is(err, syscall.EINPROGRESS) {
		if err = waitFD(fd, unix.POLLOUT, deadline); err == nil {
			var soErr int
			soErr, err = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
			if err == nil && soErr != 0 {
				err = syscall.Errno(soErr)
			}
		}
	}
	if err != nil {
		_ = syscall.Close(fd)
		return -1, fmt.Errorf("execcmd: connecting to %s: %w", a, err)
	}
	return fd, nil
}

// errDeadline says that the backend did not answer in time.
var errDeadline = errors.New("execcmd: the backend did not answer in time")

// waitFD waits until fd is ready for events, or deadline passes.
func waitFD(fd int, events int16, deadline time.Time) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errDeadline
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("execcmd: poll: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
}

// writeAll writes b to fd before deadline.
func writeAll(fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			if err := waitFD(fd, unix.POLLOUT, deadline); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("execcmd: sending the request: %w", err)
		default:
			b = b[n:]
		}
	}
	return nil
}

// readAll reads fd to its end, at most limit bytes, before deadline.
func readAll(fd, limit int, deadline time.Time) ([]byte, error) {
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			if err := waitFD(fd, unix.POLLIN, deadline); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("execcmd: reading the answer: %w", err)
		case n == 0:
			return out, nil
		default:
			out = append(out, buf[:n]...)
			if len(out) > limit {
				return nil, fmt.Errorf("execcmd: the answer is over %d bytes", limit)
			}
		}
	}
}

// parseAnswer splits an HTTP/1.x answer into its status and body.
func parseAnswer(raw []byte) (int, []byte, error) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok || len(head) > maxAnswerHead {
		return 0, nil, errors.New("execcmd: not an HTTP answer")
	}
	lines := bytes.Split(head, []byte("\r\n"))
	f := bytes.Fields(lines[0])
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return 0, nil, errors.New("execcmd: not an HTTP answer")
	}
	status, err := strconv.Atoi(string(f[1]))
	if err != nil || status < 100 || status > 999 {
		return 0, nil, errors.New("execcmd: not an HTTP status")
	}
	length, chunked := -1, false
	for _, l := range lines[1:] {
		k, v, _ := bytes.Cut(l, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, nil, errors.New("execcmd: bad Content-Length")
			}
		case bytes.EqualFold(bytes.TrimSpace(k), []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		}
	}
	switch {
	case chunked:
		body, err = unchunk(body)
		if err != nil {
			return 0, nil, err
		}
	case length >= 0:
		if len(body) < length {
			return 0, nil, errors.New("execcmd: the answer ended early")
		}
		body = body[:length]
	}
	if len(body) > maxDeadHolderAnswer {
		return 0, nil, fmt.Errorf("execcmd: the answer is over %d bytes", maxDeadHolderAnswer)
	}
	return status, body, nil
}

// unchunk decodes a chunked body.
func unchunk(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, errors.New("execcmd: bad chunked answer")
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 31)
		if err != nil || uint64(len(rest)) < n+2 {
			return nil, errors.New("execcmd: bad chunked answer")
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, rest[:n]...)
		b = rest[n+2:]
	}
}
