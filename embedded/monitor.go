package embedded

import (
	"net/http"

	"github.com/nats-io/nats-server/v2/server"
)

// MonitorPaths are the NATS monitoring endpoints MountMonitor serves, as
// a nats-server's monitoring port serves them (its root page aside: the
// node serves its own page at "/").
var MonitorPaths = []string{
	server.VarzPath, server.ConnzPath, server.RoutezPath, server.GatewayzPath, server.LeafzPath,
	server.SubszPath, server.AccountzPath, server.AccountStatzPath, server.JszPath, server.HealthzPath,
	server.StackszPath,
}

// MountMonitor registers the embedded server's monitoring endpoints
// (MonitorPaths: /varz, /connz, /routez, /subsz, /healthz, ...) on mux,
// so that the node serves them on its own HTTP port instead of the
// server opening a second one. Each request goes to the server running
// at the time, so they follow a Restart; they answer 503 while none is.
// The handlers are nats-server's own (server.Server.HandleVarz, ...),
// which work without the server's monitoring listener.
func (s *Server) MountMonitor(mux *http.ServeMux) {
	handlers := map[string]func(*server.Server, http.ResponseWriter, *http.Request){
		server.VarzPath:         (*server.Server).HandleVarz,
		server.ConnzPath:        (*server.Server).HandleConnz,
		server.RoutezPath:       (*server.Server).HandleRoutez,
		server.GatewayzPath:     (*server.Server).HandleGatewayz,
		server.LeafzPath:        (*server.Server).HandleLeafz,
		server.SubszPath:        (*server.Server).HandleSubsz,
		server.AccountzPath:     (*server.Server).HandleAccountz,
		server.AccountStatzPath: (*server.Server).HandleAccountStatz,
		server.JszPath:          (*server.Server).HandleJsz,
		server.HealthzPath:      (*server.Server).HandleHealthz,
		server.StackszPath:      (*server.Server).HandleStacksz,
	}
	for _, path := range MonitorPaths {
		h := handlers[path]
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			ns := s.prov.cur.Load()
			if ns == nil || !ns.Running() {
				http.Error(w, "nats server not running", http.StatusServiceUnavailable)
				return
			}
			h(ns, w, r)
		})
	}
}
