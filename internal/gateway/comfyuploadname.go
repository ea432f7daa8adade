package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"sync"

	"github.com/gpulock/gpulock/internal/cluster"
)

// uploadAnswer is a machine's {name, subfolder, type} for an upload.
type uploadAnswer struct{ Name, Subfolder, Type string }

// canonicalUpload returns upload u rewritten so that a machine keeps it
// under name in subfolder whatever it holds already: ComfyUI renames an
// upload whose name it has with other bytes ("x (1).png") unless the form
// says overwrite=true. The gateway hands its client one name for the
// whole cluster, so every machine must keep the file under it.
func canonicalUpload(u cluster.StoredUpload, name, subfolder string) (cluster.StoredUpload, error) {
	_, params, err := mime.ParseMediaType(u.ContentType)
	if err != nil {
		return u, fmt.Errorf("gateway: an upload's content type: %w", err)
	}
	mr := multipart.NewReader(bytes.NewReader(u.Body), params["boundary"])
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u, fmt.Errorf("gateway: reading an upload's form: %w", err)
		}
		switch part.FormName() {
		case "subfolder", "overwrite":
			continue // written below
		case "image":
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "image", "filename": name}))
			if ct := part.Header.Get("Content-Type"); ct != "" {
				h.Set("Content-Type", ct)
			}
			w, err := mw.CreatePart(h)
			if err == nil {
				_, err = io.Copy(w, part)
			}
			if err != nil {
				return u, fmt.Errorf("gateway: rewriting an upload: %w", err)
			}
		default:
			w, err := mw.CreatePart(part.Header)
			if err == nil {
				_, err = io.Copy(w, part)
			}
			if err != nil {
				return u, fmt.Errorf("gateway: rewriting an upload: %w", err)
			}
		}
	}
	if err := errors.Join(mw.WriteField("subfolder", subfolder), mw.WriteField("overwrite", "true"), mw.Close()); err != nil {
		return u, fmt.Errorf("gateway: rewriting an upload: %w", err)
	}
	u.ContentType, u.Body = mw.FormDataContentType(), buf.Bytes()
	return u, nil
}

// alignUploadNames sends canon (the upload under the name handed out,
// want) again to each machine of results that kept it under another name,
// and returns the machines that hold it under want. A machine that fails
// is logged: it gets the upload again before a prompt that names it.
func (g *Gateway) alignUploadNames(ctx context.Context, results []uploadResult, want uploadAnswer, canon cluster.StoredUpload) []string {
	took := make([]string, len(results))
	var wg sync.WaitGroup
	for i := range results {
		res := &results[i]
		if res.code != 200 {
			continue
		}
		got := answerOf(res.body)
		if got.Name == want.Name && got.Subfolder == want.Subfolder {
			took[i] = res.url
			continue
		}
		wg.Go(func() {
			g.cfg.Logger.Info("a machine kept an upload under another name; sending it again under the name handed out (overwrite)",
				"url", res.url, "got", got.Subfolder+"/"+got.Name, "want", want.Subfolder+"/"+want.Name)
			again := g.sendUpload(ctx, res.url, canon)
			if again.code != 200 || answerOf(again.body).Name != want.Name {
				g.cfg.Logger.Warn("a machine did not take an upload under the name handed out; it gets it before a prompt that names it",
					"url", res.url, "status", again.code, "err", again.err)
				return
			}
			took[i] = res.url
		})
	}
	wg.Wait()
	out := took[:0]
	for _, u := range took {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

// answerOf reads a machine's answer to an upload (zero if unreadable).
func answerOf(body []byte) uploadAnswer {
	var a uploadAnswer
	_ = json.Unmarshal(body, &a)
	return a
}

// boundUploads evicts the oldest uploads kept in Redis beyond
// Config.MaxKeptUploads, logging each: a machine that lacks one then
// refuses a prompt naming it until it is uploaded again.
func (g *Gateway) boundUploads(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, redisBound)
	defer cancel()
	evicted, err := g.cfg.Store.BoundUploads(ctx, g.cfg.MaxKeptUploads)
	if err != nil {
		g.cfg.Logger.Warn("cannot bound the uploads kept in Redis", "err", err)
		return
	}
	for _, e := range evicted {
		g.cfg.Logger.Warn("evicted the oldest kept upload: the kept uploads are over --max-kept-uploads; machines that lack it need it uploaded again",
			"file", e.Key, "bytes", e.Bytes, "max_kept_uploads", g.cfg.MaxKeptUploads)
	}
}
