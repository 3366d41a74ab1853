package registry

import (
	"os"

	"github.com/sirupsen/logrus"
)

// otelEnvs are the variables with which an administrator asks distribution's OpenTelemetry
// set-up (autoexport) for trace export.
var otelEnvs = []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}

// quietTracing turns distribution's trace export off unless the environment asks for it.
// Left alone, distribution exports to an OTLP collector at localhost:4318 and logs a failed
// export every few seconds where none runs, which is everywhere OpenShift's registry ran
// before. It returns whether it turned export off.
func quietTracing(log logrus.FieldLogger) bool {
	for _, name := range otelEnvs {
		if os.Getenv(name) != "" {
			return false
		}
	}
	if err := os.Setenv("OTEL_TRACES_EXPORTER", "none"); err != nil {
		log.WithError(err).Warn("cannot turn trace export off")
		return false
	}
	log.Info("trace export is off: set OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT to export traces")
	return true
}
