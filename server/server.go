package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/actorkv/actorkv/kvclient"
	"github.com/actorkv/actorkv/messages"
)

// Server is a running kvserver: the backend, the gRPC server (KV API and the
// standard health service), the Thrift front end (server.thrift_listen) and
// the HTTP server of the status page (/ and /status.json), /metrics,
// /healthz, /readyz and, with server.pprof, Go's profiler under
// /debug/pprof/.
type Server struct {
	cfg      Config
	log      *slog.Logger
	backend  *Backend
	core     *Core
	metrics  *Metrics
	page     *statusPage // nil without a metrics address
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	thrift   *thriftServer // nil: server.thrift_listen is off
	draining atomic.Bool
	stop     context.CancelFunc // ends the readiness watch
	drain    chan struct{}      // closed on shutdown: Batch streams end
	wg       sync.WaitGroup     // serving goroutines
	shutdown sync.Once
}

// Start opens the backend and begins serving on the configured addresses.
func Start(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var serverTLS *tls.Config
	if cfg.TLS.Enabled() {
		var err error
		if serverTLS, err = cfg.TLS.serverConfig(); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	grpcLis, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen %s: %w", cfg.Server.Listen, err)
	}
	var httpLis, thriftLis net.Listener
	closeListeners := func() {
		for _, l := range []net.Listener{grpcLis, httpLis, thriftLis} {
			if l != nil {
				l.Close()
			}
		}
	}
	if cfg.Server.Metrics != "" {
		if httpLis, err = net.Listen("tcp", cfg.Server.Metrics); err != nil {
			closeListeners()
			return nil, fmt.Errorf("server: listen %s: %w", cfg.Server.Metrics, err)
		}
	}
	var thriftMethods map[string]*kvclient.ThriftMethod
	if cfg.Server.ThriftListen != "" {
		if thriftMethods, err = kvclient.ThriftMethods(); err != nil {
			closeListeners()
			return nil, fmt.Errorf("server: %w", err)
		}
		if thriftLis, err = net.Listen("tcp", cfg.Server.ThriftListen); err != nil {
			closeListeners()
			return nil, fmt.Errorf("server: listen %s: %w", cfg.Server.ThriftListen, err)
		}
	}
	backend, err := Open(cfg, log)
	log = log.With("component", "server") // the server's own lines
	if err != nil {
		closeListeners()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, backend: backend, grpcLis: grpcLis, httpLis: httpLis}
	s.metrics = NewMetrics(backend.StatusOf, log)
	s.core = NewCore(backend.DB, cfg.Server.RequestTimeout.Duration, s.metrics).
		WithAccess(Access{Admin: cfg.Server.Admin, Admins: cfg.Server.Admins}).
		WithLimits(cfg.Server.Limits())
	s.metrics.watchCalls(s.core)
	if httpLis != nil { // the status page lives on the metrics address
		s.page = newStatusPage(backend, s.metrics, s.core, log)
	}
	opts := append(ServerOptions(), grpc.MaxConcurrentStreams(uint32(cfg.Server.MaxConnectionStreams)))
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	s.drain = make(chan struct{})
	RegisterKV(s.grpc, s.core, s.drain)
	if thriftLis != nil {
		s.thrift = startThrift(s.core, thriftMethods, thriftLis, serverTLS, log)
	}
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(messages.KV_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("grpc server", "err", err)
		}
	}()
	if httpLis != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", s.healthz)
		mux.HandleFunc("/readyz", s.readyz)
		mux.HandleFunc("/", s.page.serveHTML)
		mux.HandleFunc("/status.json", func(w http.ResponseWriter, r *http.Request) {
			s.page.serveJSON(w, r, s.draining.Load())
		})
		if s.cfg.Server.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if s.page != nil {
		s.page.run(ctx, &s.wg) // the status page's samples and digests, until stop
	}
	s.wg.Add(1)
	go func() { // mark the health service serving once a leader is known
		defer s.wg.Done()
		if err := backend.Ready(ctx); err == nil && !s.draining.Load() {
			s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			s.health.SetServingStatus(messages.KV_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
			log.Info("ready", "mode", backend.Mode())
		}
	}()
	log.Info("serving", "grpc", grpcLis.Addr().String(), "http", addrOf(httpLis), "thrift", s.ThriftAddr(), "mode", backend.Mode(), "base_path", cfg.Database.BasePath)
	return s, nil
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// ThriftAddr is the address of the Thrift front end ("" when off).
func (s *Server) ThriftAddr() string {
	if s.thrift == nil {
		return ""
	}
	return s.thrift.Addr()
}

// HTTPAddr is the address of /metrics, /healthz and /readyz ("" when off).
func (s *Server) HTTPAddr() string { return addrOf(s.httpLis) }

// Backend is the database the server serves.
func (s *Server) Backend() *Backend { return s.backend }

// Ended delivers why a replica of this process will not serve without an
// operator (see Backend.Ended); the process can only answer UNAVAILABLE for
// it from then on (kvserver exits).
func (s *Server) Ended() <-chan error { return s.backend.Ended() }

// Core is the service core the server's front ends call.
func (s *Server) Core() *Core { return s.core }

// healthz answers 200 while the process serves.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 when a leader exists and this node has caught up: a
// linearizable read version (a ReadIndex round, after which the serving
// replica has applied everything committed) succeeds within a second.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.backend.Ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if _, err := s.backend.DB.GetReadVersion(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Shutdown stops gracefully: it stops accepting, lets in-flight requests
// finish (up to the shutdown timeout, then cancels them), stops Raft and
// closes every RocksDB cleanly. It is idempotent.
func (s *Server) Shutdown() {
	s.shutdown.Do(s.doShutdown)
}

func (s *Server) doShutdown() {
	s.draining.Store(true)
	s.stop()
	close(s.drain)
	s.health.Shutdown()
	var thriftDone chan struct{}
	if s.thrift != nil { // stops beside gRPC, within the same timeout
		thriftDone = make(chan struct{})
		go func() {
			s.thrift.stop(s.cfg.Server.ShutdownTimeout.Duration)
			close(thriftDone)
		}()
	}
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.cfg.Server.ShutdownTimeout.Duration):
		s.log.Warn("shutdown: in-flight requests did not finish in time; stopping")
		s.grpc.Stop()
		<-done
	}
	if thriftDone != nil {
		<-thriftDone
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.page != nil {
		s.page.close()
	}
	if err := s.backend.Close(); err != nil {
		s.log.Error("shutdown: close storage", "err", err)
	}
	s.wg.Wait()
	s.log.Info("stopped")
}
