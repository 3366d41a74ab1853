package registry

import (
	"io"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestQuietTracing(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	for _, name := range otelEnvs {
		t.Setenv(name, "")
	}
	if !quietTracing(log) || os.Getenv("OTEL_TRACES_EXPORTER") != "none" {
		t.Fatalf("without any OTEL variable: export not turned off (OTEL_TRACES_EXPORTER=%q)", os.Getenv("OTEL_TRACES_EXPORTER"))
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
	if quietTracing(log) || os.Getenv("OTEL_TRACES_EXPORTER") != "" {
		t.Fatal("an administrator's collector was overridden")
	}
}
