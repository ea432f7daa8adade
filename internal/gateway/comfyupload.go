package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/gpulock/gpulock/internal/cluster"
)

// MaxUploadBytes is the default bound of one ComfyUI upload through the
// gateway (the multipart body; Config.MaxUpload): it is kept in Redis for
// the machines that join later.
const MaxUploadBytes = 64 << 20

// MaxKeptUploadBytes is the default bound of the total bytes of the
// uploads kept in Redis (Config.MaxKeptUploads).
const MaxKeptUploadBytes = 1 << 30

// uploadForm is what the gateway reads of an upload's form.
type uploadForm struct {
	name, subfolder, typ string
	needs                string // a mask's original_ref, as an upload key
}

// errUploadForm explains a form the gateway refuses.
type errUploadForm struct{ msg string }

func (e *errUploadForm) Error() string { return e.msg }

// readUploadForm reads the fields of a ComfyUI upload form that the
// gateway needs, and checks that its subfolder stays inside the folder.
func readUploadForm(body []byte, contentType string) (uploadForm, error) {
	f := uploadForm{typ: "input"}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return f, &errUploadForm{"gpulock: an upload must be multipart/form-data with an \"image\" file"}
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, &errUploadForm{"gpulock: cannot read the upload's form: " + err.Error()}
		}
		v, _ := io.ReadAll(io.LimitReader(part, 4096))
		switch part.FormName() {
		case "image":
			f.name = path.Base(part.FileName())
		case "subfolder":
			f.subfolder = string(v)
		case "type":
			f.typ = string(v)
		case "original_ref":
			var ref struct{ Filename, Subfolder, Type string }
			if json.Unmarshal(v, &ref) == nil && ref.Filename != "" && safeSubfolder(ref.Subfolder) {
				if key, ok := cluster.UploadKey(ref.Filename); ok && (ref.Type == "input" || strings.HasSuffix(ref.Filename, " [input]")) {
					if ref.Subfolder != "" {
						key = cluster.FileKey("input", ref.Subfolder, path.Base(strings.TrimSuffix(ref.Filename, " [input]")))
					}
					f.needs = key // ComfyUI's default type here is output: only inputs are kept
				}
			}
		}
	}
	switch {
	case f.name == "" || f.name == "." || f.name == "/":
		return f, &errUploadForm{"gpulock: the upload has no \"image\" file"}
	case !safeSubfolder(f.subfolder):
		return f, &errUploadForm{"gpulock: the upload's subfolder " + f.subfolder + " leaves the folder"}
	}
	return f, nil
}

// uploadResult is one machine's answer to an upload.
type uploadResult struct {
	url  string
	code int
	body []byte
	err  error
}

// sendUpload posts a kept upload to the machine at url.
func (g *Gateway) sendUpload(ctx context.Context, url string, u cluster.StoredUpload) uploadResult {
	res := uploadResult{url: url}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+u.Route, bytes.NewReader(u.Body))
	if err != nil {
		res.err = err
		return res
	}
	req.Header.Set("Content-Type", u.ContentType)
	resp, err := g.client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.code = resp.StatusCode
	res.body, res.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return res
}

// serveUpload answers POST /upload/image and /upload/mask (route): the
// file goes to every live machine and is kept in Redis (for UploadTTL), so
// that a machine that joins later, or missed it, gets it before a prompt
// that names it runs there. The answer is a machine's ({name, subfolder,
// type}): the first that kept the name asked for, else the first that
// took it (ComfyUI renames a file it holds with other bytes, "x (1).png");
// every machine then keeps it under that name (sent again with
// overwrite=true where it was named otherwise), and so does Redis. When
// none took it, the answer is the first machine's refusal.
func (g *Gateway) serveUpload(w http.ResponseWriter, r *http.Request, route string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxUpload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "upload_too_large",
				fmt.Sprintf("gpulock: an upload through the cluster is limited to %d bytes (it is kept in Redis for every machine); make the file smaller", g.cfg.MaxUpload))
		}
		return
	}
	form, err := readUploadForm(body, r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_upload", err.Error())
		return
	}
	urls, err := g.cfg.Store.LiveURLs(r.Context(), g.cfg.Profile)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if len(urls) == 0 {
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; start a shim with --redis")
		return
	}
	u := cluster.StoredUpload{Route: route, ContentType: r.Header.Get("Content-Type"), Body: body, Needs: form.needs}
	ctx, cancel := context.WithTimeout(r.Context(), uploadPushTimeout)
	defer cancel()
	results := make([]uploadResult, len(urls))
	var wg sync.WaitGroup
	for i, url := range urls {
		wg.Go(func() {
			g.readyFor(ctx, url, form.needs) // a mask's original first
			results[i] = g.sendUpload(ctx, url, u)
		})
	}
	wg.Wait()
	var answer *uploadResult
	for i := range results {
		res := &results[i]
		if res.code == http.StatusOK {
			if answer == nil || (answerOf(res.body).Name == form.name && answerOf(answer.body).Name != form.name) {
				answer = res // the first that kept the name asked for, else the first
			}
			continue
		}
		g.cfg.Logger.Warn("a machine did not take an upload; it gets it before a prompt that names it", "url", res.url, "status", res.code, "err", res.err)
	}
	if answer == nil {
		if res := results[0]; res.code != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(res.code)
			_, _ = w.Write(res.body)
			return
		}
		writeError(w, http.StatusBadGateway, "upstream_unreachable", "gpulock: no machine took the upload: "+results[0].err.Error())
		return
	}
	got := answerOf(answer.body)
	if got.Name == "" {
		got.Name, got.Subfolder, got.Type = form.name, form.subfolder, form.typ
	}
	if got.Type == "" || got.Type == "input" {
		key := cluster.FileKey("input", got.Subfolder, got.Name)
		// Kept, and sent to the machines that named it otherwise, under
		// the name handed out.
		canon, err := canonicalUpload(u, got.Name, got.Subfolder)
		if err != nil {
			g.cfg.Logger.Warn("cannot rewrite an upload under the name handed out", "file", key, "err", err)
			canon = u
		}
		took := g.alignUploadNames(ctx, results, got, canon)
		if err := g.cfg.Store.KeepUpload(context.WithoutCancel(ctx), key, canon, took); err != nil {
			g.cfg.Logger.Warn("cannot keep an upload in Redis: machines that join later will not have it", "file", key, "err", err)
		} else {
			g.boundUploads(context.WithoutCancel(ctx))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer.body)
}

// viewInput answers GET /view of an input file (type=input) from any live
// machine, first sending it a kept upload of that name it has not
// received (a machine that joined after the upload).
func (g *Gateway) viewInput(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !safeSubfolder(q.Get("subfolder")) {
		writeError(w, http.StatusBadRequest, "bad_subfolder", "gpulock: the subfolder "+q.Get("subfolder")+" leaves the folder")
		return
	}
	urls, err := g.cfg.Store.LiveURLs(r.Context(), g.cfg.Profile)
	if err != nil {
		g.redisDown(w, err)
		return
	}
	if len(urls) == 0 {
		writeUnavailable(w, g.cfg.RetryAfter, "no_machine", "gpulock: no live machine serves "+g.cfg.Profile+"; start a shim with --redis")
		return
	}
	url := urls[rand.IntN(len(urls))]
	key := cluster.FileKey("input", q.Get("subfolder"), path.Base(q.Get("filename")))
	g.readyFor(r.Context(), url, key)
	g.pass(w, r, url)
}

// readyFor sends the machine at url the kept upload key (a mask's
// original) if it has not received it; "" does nothing.
func (g *Gateway) readyFor(ctx context.Context, url, key string) {
	if key == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, redisBound)
	_, missing, err := g.cfg.Store.DispatchNeeds(rctx, "", url, []string{key})
	cancel()
	if err == nil {
		for _, k := range missing {
			g.pushUpload(ctx, url, k, false)
		}
	}
}
