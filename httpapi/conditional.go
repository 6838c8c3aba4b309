package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// HTTP semantics every route shares: HEAD answers what GET would, without
// the body; a GET whose If-None-Match names the ETag the answer carries is
// 304 Not Modified, without the body (RFC 9110 13.1.2).

// headAsGet serves a HEAD as the GET of the same path: the handlers run as
// for a GET, and net/http writes no body for the HEAD the client sent.
func headAsGet(engine *gin.Engine) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method != http.MethodHead || c.FullPath() != "" {
			c.Next()
			return
		}
		get := c.Request.Clone(c.Request.Context())
		get.Method = http.MethodGet
		c.Request = get
		engine.HandleContext(c)
		c.Abort()
	}
}

// notModified answers 304 for a GET (or HEAD) whose If-None-Match names
// the ETag of the 200 it would get.
func notModified() gin.HandlerFunc {
	return func(c *gin.Context) {
		inm := c.GetHeader("If-None-Match")
		if inm == "" || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) {
			c.Next()
			return
		}
		c.Writer = &conditionalWriter{ResponseWriter: c.Writer, ifNoneMatch: inm}
		c.Next()
	}
}

// conditionalWriter turns a 200 whose ETag If-None-Match names into a 304
// without a body.
type conditionalWriter struct {
	gin.ResponseWriter
	ifNoneMatch string
	suppressed  bool
}

func (w *conditionalWriter) WriteHeader(code int) {
	if code == http.StatusOK && etagMatches(w.ifNoneMatch, w.Header().Get("ETag")) {
		code, w.suppressed = http.StatusNotModified, true
		w.Header().Del("Content-Length")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *conditionalWriter) Write(b []byte) (int, error) {
	if w.suppressed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *conditionalWriter) WriteString(s string) (int, error) {
	if w.suppressed {
		return len(s), nil
	}
	return w.ResponseWriter.WriteString(s)
}

// etagMatches reports whether the If-None-Match list names etag (weak
// comparison; * names any).
func etagMatches(list, etag string) bool {
	if etag == "" {
		return false
	}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}
