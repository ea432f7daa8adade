package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Files uploaded through a gateway (ComfyUI's /upload/image and
// /upload/mask) are kept in Redis for UploadTTL, so that a machine that
// did not get one at upload time (it was down, or joined later) gets it
// before a prompt that names it runs there.

// UploadTTL is how long an uploaded file is kept in Redis.
const UploadTTL = 24 * time.Hour

// keyCUploads maps each kept upload's key to its digest.
const keyCUploads = prefix + "cuploads"

func keyCUpload(key string) string    { return prefix + "cupload:" + key }
func keyCUploadHad(url string) string { return prefix + "cuphad:" + url }

// StoredUpload is one upload as a gateway received it, to send again.
type StoredUpload struct {
	// Route is "/upload/image" or "/upload/mask".
	Route string
	// ContentType is the request's multipart Content-Type (with boundary).
	ContentType string
	// Body is the multipart body as the client sent it.
	Body []byte
	// Needs is the key of another upload that must be on the machine first
	// (a mask's original_ref), or "".
	Needs string
}

// UploadKey names a file of ComfyUI's input folder as a LoadImage input
// names it ("sub/x.png", with or without " [input]"); ok is false for a
// name of another folder (" [output]", " [temp]").
func UploadKey(name string) (key string, ok bool) {
	name, annotated := strings.CutSuffix(name, " [input]")
	if !annotated && strings.HasSuffix(name, "]") && strings.Contains(name, " [") {
		return "", false
	}
	dir, file := path.Split(name)
	return FileKey("input", strings.TrimSuffix(dir, "/"), file), true
}

// KeepUpload keeps an upload under key (FileKey of the answer's type,
// subfolder and name) for UploadTTL, replacing an older one of that key,
// and records that the machines at urls have it (see BoundUploads for
// their total).
func (s *Store) KeepUpload(ctx context.Context, key string, u StoredUpload, urls []string) error {
	d := uploadDigest(u)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		k := keyCUpload(key)
		p.Del(ctx, k)
		p.HSet(ctx, k, "route", u.Route, "ctype", u.ContentType, "body", u.Body, "needs", u.Needs, "digest", d)
		p.PExpire(ctx, k, UploadTTL)
		p.HSet(ctx, keyCUploads, key, d)
		noteKept(ctx, p, key, len(u.Body), time.Now().UnixMilli())
		for _, url := range urls {
			markHad(ctx, p, url, key, d)
		}
		return nil
	})
	if err != nil {
		return redisErr(err)
	}
	return nil
}

func markHad(ctx context.Context, p redis.Pipeliner, url, key, digest string) {
	p.SAdd(ctx, keyCUploadHad(url), key+"@"+digest)
	p.PExpire(ctx, keyCUploadHad(url), UploadTTL)
}

// LoadUpload reads a kept upload; found is false when it expired or was
// never kept (then its key is forgotten).
func (s *Store) LoadUpload(ctx context.Context, key string) (u StoredUpload, digest string, found bool, err error) {
	v, err := s.rdb.HGetAll(ctx, keyCUpload(key)).Result()
	if err != nil {
		return StoredUpload{}, "", false, redisErr(err)
	}
	if v["route"] == "" {
		_ = s.rdb.HDel(ctx, keyCUploads, key).Err()
		return StoredUpload{}, "", false, nil
	}
	return StoredUpload{Route: v["route"], ContentType: v["ctype"], Body: []byte(v["body"]), Needs: v["needs"]}, v["digest"], true, nil
}

// UploadHad records that the machine at url received upload key (whose
// content has digest).
func (s *Store) UploadHad(ctx context.Context, url, key, digest string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		markHad(ctx, p, url, key, digest)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return redisErr(err)
	}
	return nil
}

func uploadDigest(u StoredUpload) string {
	h := sha256.Sum256(u.Body)
	return hex.EncodeToString(h[:8])
}
