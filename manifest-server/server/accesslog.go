package server

import (
	"io"
	"net"
	"net/http"
)

// recorder remembers what a handler answered, for the access log. It
// passes ReadFrom through so that file bodies still go out by sendfile.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	device string // set by the report handler
	errMsg string // set by handlers that refuse a request
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var (
		n   int64
		err error
	)
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// note records facts about a request for its access log line.
func note(w http.ResponseWriter, device, errMsg string) {
	if rec, ok := w.(*recorder); ok {
		if device != "" {
			rec.device = device
		}
		if errMsg != "" {
			rec.errMsg = errMsg
		}
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
