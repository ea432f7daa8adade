package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// wsReadLimit bounds one frame from a machine (ComfyUI's previews).
const wsReadLimit = 64 << 20

// serveWebsocket answers ComfyUI's GET /ws?clientId=ID: it joins the
// websockets of every live machine under the same clientId and sends the
// client every frame of each, so that a client hears about its prompts
// wherever they run. It ends when the client leaves, when every machine's
// socket ended, or when the gateway closes. Machines that join later are
// not heard on this socket.
func (g *Gateway) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	urls, err := g.cfg.Store.LiveURLs(r.Context(), g.cfg.Profile)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if len(urls) == 0 {
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; start a shim with --redis")
		return
	}
	client := r.URL.Query().Get("clientId")
	if client == "" {
		client = strings.ReplaceAll(newUUID(), "-", "")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	var ups []*websocket.Conn
	for _, u := range urls {
		c, _, err := websocket.Dial(ctx, wsURL(u, r.URL.Path, client), nil)
		if err != nil {
			g.cfg.Logger.Warn("cannot open a machine's websocket", "url", u, "err", err)
			continue
		}
		c.SetReadLimit(wsReadLimit)
		ups = append(ups, c)
	}
	if len(ups) == 0 {
		writeError(w, http.StatusBadGateway, "upstream_unreachable", "gpulock: no machine's websocket could be opened")
		return
	}
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		for _, c := range ups {
			_ = c.CloseNow()
		}
		return
	}
	var mu sync.Mutex // one writer at a time on the client's socket
	var wg sync.WaitGroup
	for _, up := range ups {
		wg.Go(func() {
			defer up.CloseNow()
			for {
				typ, b, err := up.Read(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				err = down.Write(ctx, typ, b)
				mu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }() // ends with the readers, which end with ctx
	left := make(chan struct{})
	go func() { // the client's frames mean nothing to the cluster; its close ends all
		defer close(left)
		for {
			if _, _, err := down.Read(ctx); err != nil {
				cancel()
				return
			}
		}
	}()
	select {
	case <-all:
	case <-ctx.Done():
	}
	_ = down.Close(websocket.StatusNormalClosure, "")
	cancel()
	<-all
	<-left
}

// wsURL is a machine's websocket for clientId.
func wsURL(base, path, client string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = path
	u.RawQuery = url.Values{"clientId": {client}}.Encode()
	return u.String()
}
