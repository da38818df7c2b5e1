package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testConfig = `{"region":"sa-brazil-1","project_id":"0123456789abcdef0123456789abcdef","vpc_cidr":"192.168.0.0/16",
 "subnets":[{"name":"s1","cidr":"192.168.0.0/24"}],
 "ecss":[{"id":"ecs00001-0000-4000-8000-000000000001","name":"ecs1","ip":"192.168.0.2","agency":true},
         {"id":"ecs00002-0000-4000-8000-000000000002","name":"ecs2","ip":"192.168.0.3"}],
 "routes":[{"type":"ecs","destination":"10.0.2.0/24","nexthop":"ecs00001-0000-4000-8000-000000000001"}],
 "ak":"AK1","sk":"SK1","credential_ttl":"1h"}`

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vpc.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs the command in-process and returns its base URL once it printed
// its ready line, and a function that stops it (like SIGTERM) and returns its error.
func start(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-done:
		cancel()
		t.Fatalf("run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("no ready line in 10s")
	}
	if !strings.HasPrefix(line, "vpcroute-sim ready on http://") {
		cancel()
		t.Fatalf("ready line %q", line)
	}
	url := strings.Fields(line)[3]
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not stop within 10s")
			return nil
		}
	}
	return url, stop
}

func TestRunServesAndStops(t *testing.T) {
	url, stop := start(t, "--listen", "127.0.0.1:0", "--config", writeConfig(t, testConfig))
	resp, err := http.Get(url + "/ecs/ecs1/openstack/latest/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"uuid":"ecs00001-0000-4000-8000-000000000001"`) {
		t.Fatalf("metadata: %d %s", resp.StatusCode, b)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"--listen", "127.0.0.1:0"}, "--config"},
		{"missing file", []string{"--config", "/nonexistent/vpc.json"}, "read config"},
		{"bad JSON", []string{"--config", writeConfig(t, "{")}, "parse config"},
		{"invalid VPC", []string{"--config", writeConfig(t, `{"ak":"a","sk":"s","vpc_cidr":"nope"}`)}, "vpc_cidr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestExampleConfig keeps example.json, the guide's two-ECS VPC, loadable.
func TestExampleConfig(t *testing.T) {
	url, stop := start(t, "--listen", "127.0.0.1:0", "--config", "example.json")
	defer stop()
	resp, err := http.Get(url + "/ecs/ecs2/openstack/latest/network_data.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"vif_id":"5a1b2c3d-0000-4000-8000-00000000f002"`) {
		t.Fatalf("network_data.json of ecs2: %s", b)
	}
}
