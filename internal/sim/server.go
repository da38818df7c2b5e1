package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fault makes the next matching requests fail. Faults queue up in the order
// injected; each request consumes at most one, the first whose PathContains
// matches. Admin paths (/_sim/) never fail.
type Fault struct {
	// Count is how many requests the fault affects; 0 means one.
	Count int `json:"count"`
	// Status is the HTTP status to answer with (429, 500, 503...); 0 answers
	// normally after Latency.
	Status int `json:"status"`
	// Code is the error code of the body. Codes starting with "APIGW." get the API
	// gateway's body, others the VPC service's. Default: APIGW.0308 for 429,
	// VPC.0001 otherwise.
	Code string `json:"code"`
	// Latency delays the answer (or the drop).
	Latency time.Duration `json:"latency"`
	// Drop closes the connection without an answer.
	Drop bool `json:"drop"`
	// PathContains restricts the fault to request paths containing it.
	PathContains string `json:"path_contains"`
	// Method restricts the fault to one HTTP method ("PUT" for route writes).
	Method string `json:"method"`
	// Rate makes the fault stay queued and hit each matching request with this
	// probability (0.3: three requests in ten), Count aside, until ClearFaults.
	Rate float64 `json:"rate"`
	// Late applies the request that many seconds later (as a duration), in the
	// background, while the caller gets no answer: the connection stays silent
	// until the caller gives up (or Latency passes, then it is dropped). It is the
	// write that "timed out" and still lands.
	Late time.Duration `json:"late"`
	// Apply carries the request out before Status is answered: the write landed,
	// the caller hears 5xx.
	Apply bool `json:"apply"`
}

// UnmarshalJSON accepts latency and late as duration strings ("2s") or nanoseconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var aux struct {
		plain
		Latency json.RawMessage `json:"latency"`
		Late    json.RawMessage `json:"late"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*f = Fault(aux.plain)
	var err error
	if f.Latency, err = parseDuration("latency", aux.Latency); err != nil {
		return err
	}
	f.Late, err = parseDuration("late", aux.Late)
	return err
}

func parseDuration(field string, raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return time.ParseDuration(str)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf(`%s must be a duration such as "2s"`, field)
	}
	return time.Duration(n), nil
}

// InjectFault queues a fault for the next matching requests.
func (s *Sim) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// FaultsHit is how many requests a fault has hit so far.
func (s *Sim) FaultsHit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultsHit
}

// ClearFaults drops every queued fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Sim) takeFault(method, path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.faults {
		f := &s.faults[i]
		if f.PathContains != "" && !strings.Contains(path, f.PathContains) {
			continue
		}
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Rate > 0 {
			if mrand.Float64() >= f.Rate {
				continue
			}
			s.hitLocked(*f)
			return *f, true
		}
		s.hitLocked(*f)
		got := *f
		f.Count--
		if f.Count <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return got, true
	}
	return Fault{}, false
}

// Handler serves the VPC API (/v1/...), the metadata service (/openstack/...
// and /ecs/{name}/openstack/...) and the admin API (/_sim/...).
func (s *Sim) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	return h.Hijack()
}

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newHexID()
	w.Header().Set("X-Request-Id", reqID)
	// The emulator's own clock, which tests move to make skew.
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	rec := &recorder{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.log = append(s.log, RequestLog{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status})
		s.mu.Unlock()
	}()

	if f, ok := s.takeFault(r.Method, r.URL.Path); ok {
		if f.Late > 0 {
			s.applyLate(rec, r, reqID, f)
			return
		}
		if f.Apply {
			s.applyNow(r, reqID)
		}
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if f.Drop {
			if conn, _, err := rec.Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if f.Status != 0 {
			code := f.Code
			if code == "" && f.Status == http.StatusTooManyRequests {
				code = "APIGW.0308"
			} else if code == "" {
				code = "VPC.0001"
			}
			if strings.HasPrefix(code, "APIGW.") {
				msg := "The throttling threshold has been reached"
				if f.Status != http.StatusTooManyRequests {
					msg = "injected fault"
				}
				writeGWError(rec, reqID, &gwError{Status: f.Status, Code: code, Message: msg})
			} else {
				writeAPIError(rec, &apiError{Status: f.Status, Code: code, Message: "System exception (injected fault)"})
			}
			return
		}
	}

	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		s.serveAPI(rec, r, reqID)
	case strings.HasPrefix(r.URL.Path, "/openstack/"), strings.HasPrefix(r.URL.Path, "/ecs/"):
		s.serveMetadata(rec, r)
	default:
		writeGWError(rec, reqID, &gwError{Status: http.StatusNotFound, Code: "APIGW.0101",
			Message: "The API does not exist or has not been published in the environment"})
	}
}

// hitLocked counts a fault taken, and a late write to wait for. Call with mu held.
func (s *Sim) hitLocked(f Fault) {
	s.faultsHit++
	if f.Late > 0 {
		s.late++
	}
}

// applyLate answers nothing, and carries r out f.Late later, in the background.
func (s *Sim) applyLate(rec *recorder, r *http.Request, reqID string, f Fault) {
	body, _ := io.ReadAll(r.Body)
	late := r.Clone(context.Background())
	go func() {
		defer func() {
			s.mu.Lock()
			s.late--
			s.lateDone().Broadcast()
			s.mu.Unlock()
		}()
		time.Sleep(f.Late)
		late.Body = io.NopCloser(bytes.NewReader(body))
		s.serveAPI(&recorder{ResponseWriter: httptest.NewRecorder()}, late, reqID)
	}()
	wait := f.Latency
	if wait <= 0 {
		wait = time.Hour
	}
	select {
	case <-time.After(wait):
	case <-r.Context().Done():
	}
	if conn, _, err := rec.Hijack(); err == nil {
		conn.Close()
	}
}

// applyNow carries r out and throws the answer away, for a fault that answers
// with an error after all.
func (s *Sim) applyNow(r *http.Request, reqID string) {
	body, _ := io.ReadAll(r.Body)
	now := r.Clone(r.Context())
	now.Body = io.NopCloser(bytes.NewReader(body))
	s.serveAPI(&recorder{ResponseWriter: httptest.NewRecorder()}, now, reqID)
}

// WaitLate waits until every late write a fault has taken is applied.
func (s *Sim) WaitLate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.late > 0 {
		s.lateDone().Wait()
	}
}

// lateDone is the condition WaitLate waits on. Call with mu held.
func (s *Sim) lateDone() *sync.Cond {
	if s.lateCond == nil {
		s.lateCond = sync.NewCond(&s.mu)
	}
	return s.lateCond
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]string{"code": e.Code, "message": e.Message})
}

func writeGWError(w http.ResponseWriter, reqID string, e *gwError) {
	writeJSON(w, e.Status, map[string]string{"error_code": e.Code, "error_msg": e.Message, "request_id": reqID})
}

// readBody reads at most 1 MiB, the API gateway's practical limit for these calls.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}
