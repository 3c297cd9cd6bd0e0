package observe

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestHTTPEndpoint(t *testing.T) {
	m := New(testConfig(t))
	s, err := serveHTTP("127.0.0.1:0", m, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	base := "http://" + s.addr

	t.Run("healthz answers 200 while the process lives", func(t *testing.T) {
		if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz: %d %q, want 200 \"ok\\n\"", code, body)
		}
	})
	t.Run("readyz answers 503 with the reason outside a session", func(t *testing.T) {
		if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: not running\n" {
			t.Errorf("/readyz: %d %q, want 503 \"not ready: not running\\n\"", code, body)
		}
		m.RunStarted(false, "")
		if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
			t.Errorf("/readyz while starting: %d %q, want 503 naming the start", code, body)
		}
	})
	t.Run("other methods are refused", func(t *testing.T) {
		resp, err := http.Post(base+"/healthz", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
		}
	})
	t.Run("unknown paths are 404", func(t *testing.T) {
		if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
			t.Errorf("/nope: %d, want 404", code)
		}
	})
}

func TestHTTPListenFailureNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = serveHTTP(ln.Addr().String(), New(testConfig(t)), zerolog.Nop())
	if err == nil {
		t.Fatal("serveHTTP on a port in use succeeded")
	}
	for _, want := range []string{"http.listen " + ln.Addr().String(), "address already in use", `set http.listen to a free host:port, or "" to turn the endpoint off`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestHTTPCloseFreesThePort(t *testing.T) {
	s, err := serveHTTP("127.0.0.1:0", New(testConfig(t)), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s.close()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listen on %s after close: %v", s.addr, err)
	}
	ln.Close()
}
