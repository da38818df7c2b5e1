package main

import "testing"

func TestShellQuote(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.0.2.0/24", "my-net"}, "network create --subnet 10.0.2.0/24 my-net"},
		{[]string{"sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc 10.0.3.2 80`}, `sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc 10.0.3.2 80"`},
		{[]string{"echo", "a b"}, `echo "a b"`},
		{[]string{"echo", `say "$HOME"`}, `echo 'say "$HOME"'`},
		{[]string{"echo", `it's "x"`}, `echo 'it'\''s "x"'`},
		{[]string{"echo", ""}, `echo ""`},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.args); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}
