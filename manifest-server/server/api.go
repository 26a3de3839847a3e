package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/report"
)

func (s *Server) postReport(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if ok, wait := s.perIP.allow(ip); !ok {
		s.refuse(w, http.StatusTooManyRequests, report.ErrorBody{Code: "rate-limited", Error: "too many reports from " + ip}, wait)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, report.MaxBodySize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuse(w, http.StatusRequestEntityTooLarge, report.ErrorBody{Code: "too-large", Error: fmt.Sprintf("report larger than %d bytes", report.MaxBodySize)}, 0)
			return
		}
		s.refuse(w, http.StatusBadRequest, report.ErrorBody{Code: "invalid", Error: "read body: " + err.Error()}, 0)
		return
	}
	rep, err := report.Parse(body)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, report.ErrorBody{Code: "invalid", Error: err.Error()}, 0)
		return
	}
	note(w, rep.Device, "")

	key := ed25519Key(rep.PublicKey)
	known, err := s.cfg.DB.Device(r.Context(), rep.Device)
	switch {
	case err == nil:
		if rep.PublicKey != nil && !bytes.Equal(rep.PublicKey, known.PublicKey) {
			s.refuse(w, http.StatusUnauthorized, report.ErrorBody{Code: "key-mismatch", Error: "device " + rep.Device + " is registered with another key"}, 0)
			return
		}
		key = known.PublicKey
	case errors.Is(err, devicedb.ErrNotFound):
		if key == nil {
			s.refuse(w, http.StatusUnauthorized, report.ErrorBody{Code: "unknown-device", Error: "device " + rep.Device + " is not registered and sent no public key"}, 0)
			return
		}
	default:
		s.internal(w, err)
		return
	}
	if err := report.Verify(key, r.Header.Get(report.SignatureHeader), body); err != nil {
		s.refuse(w, http.StatusUnauthorized, report.ErrorBody{Code: "bad-signature", Error: err.Error()}, 0)
		return
	}
	if ok, wait := s.perDev.allow(rep.Device); !ok {
		s.refuse(w, http.StatusTooManyRequests, report.ErrorBody{Code: "rate-limited", Error: "too many reports from device " + rep.Device}, wait)
		return
	}
	err = s.cfg.DB.Accept(r.Context(), rep, key, s.now(), ip)
	var replay *devicedb.ReplayError
	switch {
	case err == nil:
	case errors.As(err, &replay):
		s.refuse(w, http.StatusConflict, report.ErrorBody{Code: "replay", Error: err.Error(), LastSeq: replay.LastSeq}, 0)
		return
	case errors.Is(err, devicedb.ErrKeyMismatch):
		s.refuse(w, http.StatusUnauthorized, report.ErrorBody{Code: "key-mismatch", Error: "device " + rep.Device + " is registered with another key"}, 0)
		return
	case errors.Is(err, devicedb.ErrUnknownDevice):
		s.refuse(w, http.StatusUnauthorized, report.ErrorBody{Code: "unknown-device", Error: err.Error()}, 0)
		return
	case errors.Is(err, report.ErrInvalid):
		s.refuse(w, http.StatusBadRequest, report.ErrorBody{Code: "invalid", Error: err.Error()}, 0)
		return
	default:
		s.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		Seq    uint64 `json:"seq"`
	}{"accepted", rep.Seq})
}

func ed25519Key(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *Server) getDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := s.cfg.DB.Devices(r.Context())
	if err != nil {
		s.internal(w, err)
		return
	}
	if ds == nil {
		ds = []devicedb.Device{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, ds)
}

// maxEvents caps the events one request returns.
const maxEvents = 1000

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.refuse(w, http.StatusBadRequest, report.ErrorBody{Code: "invalid", Error: "limit must be a positive integer"}, 0)
			return
		}
		limit = min(n, maxEvents)
	}
	evs, err := s.cfg.DB.Events(r.Context(), id, limit)
	if errors.Is(err, devicedb.ErrNotFound) {
		s.refuse(w, http.StatusNotFound, report.ErrorBody{Code: "not-found", Error: "no device " + id}, 0)
		return
	}
	if err != nil {
		s.internal(w, err)
		return
	}
	if evs == nil {
		evs = []devicedb.Event{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, evs)
}

func (s *Server) refuse(w http.ResponseWriter, status int, body report.ErrorBody, retryAfter time.Duration) {
	if status == http.StatusTooManyRequests {
		secs := int((retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	note(w, "", body.Code+": "+body.Error)
	writeJSON(w, status, body)
}

func (s *Server) internal(w http.ResponseWriter, err error) {
	note(w, "", err.Error())
	writeJSON(w, http.StatusInternalServerError, report.ErrorBody{Code: "internal", Error: "internal error"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
