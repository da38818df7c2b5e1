//go:build linux

package testbed

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"
)

func readTar(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read rootfs tar: %v", err)
		}
		if _, dup := out[h.Name]; dup {
			t.Errorf("rootfs has %q twice", h.Name)
		}
		out[h.Name] = h
	}
}

func TestBuildRootfs(t *testing.T) {
	bin := []byte("\x7fELF fake busybox")
	applets := []string{"bin/sh", "usr/bin/nc", "sbin/ip", "usr/sbin/httpd", "bin/busybox", "", "usr/bin/["}
	a, err := buildRootfs(bin, applets, "ecs2")
	if err != nil {
		t.Fatal(err)
	}
	b, err := buildRootfs(bin, applets, "ecs2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("same inputs gave different tars: Up would re-import the image every time")
	}
	other, err := buildRootfs(bin, applets, "ecs1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, other) {
		t.Error("ecs1 and ecs2 images are identical: index.html must name the ECS")
	}

	files := readTar(t, a)
	for _, name := range []string{"usr/bin/nc", "sbin/ip", "bin/sh", "usr/sbin/httpd", "usr/bin/["} {
		h, ok := files[name]
		if !ok {
			t.Errorf("applet %s missing", name)
			continue
		}
		if h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s = type %c -> %q, want symlink to /bin/busybox", name, h.Typeflag, h.Linkname)
		}
	}
	if h := files["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 || h.Size != int64(len(bin)) {
		t.Errorf("bin/busybox = %+v, want the executable itself", h)
	}
	for _, dir := range []string{"usr/", "usr/bin/", "usr/sbin/", "sbin/", "tmp/", "www/", "etc/"} {
		if h := files[dir]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("directory %s missing", dir)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/hosts", "etc/nsswitch.conf", "www/index.html"} {
		if h := files[f]; h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("file %s missing", f)
		}
	}

	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal("www/index.html not found")
		}
		if h.Name == "www/index.html" {
			body, _ := io.ReadAll(tr)
			if string(body) != "vrbox on ecs2\n" {
				t.Errorf("index.html = %q, want it to name ecs2", body)
			}
			break
		}
	}
}

func TestHTTPGetCmd(t *testing.T) {
	got := HTTPGetCmd("10.0.3.2", 80)
	want := `printf 'GET / HTTP/1.0\r\nHost: 10.0.3.2\r\n\r\n' | nc -w 5 10.0.3.2 80`
	if len(got) != 3 || got[0] != "sh" || got[2] != want {
		t.Errorf("HTTPGetCmd = %q, want sh -c %q", got, want)
	}
}
