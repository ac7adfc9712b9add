package embedded

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Name: "n1", ClusterPort: RandomPort, Routes: []string{" nats-route://127.0.0.1:6222 "}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name: "n1", Host: DefaultHost, Port: 4222,
		ClusterName: DefaultClusterName, ClusterHost: DefaultHost, ClusterPort: RandomPort,
		Routes:     []string{"nats-route://127.0.0.1:6222"},
		MaxPayload: 1 << 20, ReadyTimeout: 10 * time.Second,
	}
	if c.Host != want.Host || c.Port != want.Port || c.ClusterName != want.ClusterName ||
		c.ClusterHost != want.ClusterHost || c.ClusterPort != want.ClusterPort ||
		strings.Join(c.Routes, ",") != strings.Join(want.Routes, ",") ||
		c.MaxPayload != want.MaxPayload || c.ReadyTimeout != want.ReadyTimeout {
		t.Fatalf("normalize:\n got %+v\nwant %+v", c, want)
	}
	c, err = Config{Name: "n1", Host: "10.0.0.1"}.normalize()
	if err != nil || c.ClusterHost != "10.0.0.1" {
		t.Fatalf("ClusterHost should default to Host: %+v, %v", c, err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Name: "n1", Port: RandomPort, ClusterPort: RandomPort}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name is required"},
		{"name with space", func(c *Config) { c.Name = "n 1" }, "whitespace"},
		{"cluster name with space", func(c *Config) { c.ClusterName = "kv mesh" }, "whitespace"},
		{"port -2", func(c *Config) { c.Port = -2 }, "port -2"},
		{"port too big", func(c *Config) { c.Port = 65536 }, "port 65536"},
		{"cluster port -7", func(c *Config) { c.ClusterPort = -7 }, "cluster port -7"},
		{"routes without cluster", func(c *Config) {
			c.ClusterPort = 0
			c.Routes = []string{"nats-route://127.0.0.1:6222"}
		}, "cluster port is 0"},
		{"empty route", func(c *Config) { c.Routes = []string{""} }, "empty route"},
		{"route wrong scheme", func(c *Config) { c.Routes = []string{"nats://127.0.0.1:6222"} }, "scheme"},
		{"route no scheme", func(c *Config) { c.Routes = []string{"127.0.0.1:6222"} }, "route"},
		{"route no port", func(c *Config) { c.Routes = []string{"nats-route://127.0.0.1"} }, "port"},
		{"route port 0", func(c *Config) { c.Routes = []string{"nats-route://127.0.0.1:0"} }, "port"},
		{"route port text", func(c *Config) { c.Routes = []string{"nats-route://127.0.0.1:abc"} }, "route"},
		{"route no host", func(c *Config) { c.Routes = []string{"nats-route://:6222"} }, "missing host"},
		{"route with path", func(c *Config) { c.Routes = []string{"nats-route://h:6222/x"} }, "path"},
		{"route unparsable", func(c *Config) { c.Routes = []string{"nats-route://[::1"} }, "route"},
		{"negative max payload", func(c *Config) { c.MaxPayload = -1 }, "negative"},
		{"max payload > max pending", func(c *Config) { c.MaxPayload = 64<<20 + 1 }, "max pending"},
		{"negative ready timeout", func(c *Config) { c.ReadyTimeout = -time.Second }, "ready timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig containing %q", err, tt.want)
			}
			s, err := Start(c)
			if s != nil || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Start() = %v, %v; want nil, ErrInvalidConfig", s, err)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
