package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// pluginsDir is where Docker looks for plugin sockets: the host service's is
// vpcroute.sock there, a managed plugin's is in a directory of its own,
// <plugin ID>/vpcroute.sock.
var pluginsDir = "/run/docker/plugins"

// findSocket returns the running plugin's socket: the one given, else the host
// service's, else the one managed plugin's.
func findSocket(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if s := os.Getenv("VPCROUTE_SOCKET"); s != "" {
		return s, nil
	}
	if _, err := os.Stat(filepath.Join(pluginsDir, "vpcroute.sock")); err == nil {
		return filepath.Join(pluginsDir, "vpcroute.sock"), nil
	}
	managed, _ := filepath.Glob(filepath.Join(pluginsDir, "*", "vpcroute.sock"))
	switch len(managed) {
	case 1:
		return managed[0], nil
	case 0:
		return "", fmt.Errorf("no running vpcroute found (no %s, no %s): start it (`systemctl start vpcroute`, or `docker plugin enable vpcroute:latest`), or give its socket with --socket",
			filepath.Join(pluginsDir, "vpcroute.sock"), filepath.Join(pluginsDir, "<plugin ID>", "vpcroute.sock"))
	}
	return "", fmt.Errorf("several vpcroute plugins run (%s): choose one with --socket", strings.Join(managed, ", "))
}

// call asks the running plugin: method path, the answer decoded into v.
func call(socket, method, path string, timeout time.Duration, v any) error {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequest(method, "http://vpcroute"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("ask the plugin at %s: %w (is it running?)", socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read the plugin's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Err string }
		if json.Unmarshal(body, &e) == nil && e.Err != "" {
			return fmt.Errorf("%s", e.Err)
		}
		return fmt.Errorf("the plugin at %s answered %s: %s", socket, resp.Status, strings.TrimSpace(string(body)))
	}
	if raw, ok := v.(*json.RawMessage); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, v)
}
