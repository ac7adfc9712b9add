package embedded

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// startLogger is installed on every server this package starts, with or
// without a user Logger. It exists for Fatalf: the server calls it when a
// listener cannot be opened (port in use) and then keeps running without
// that listener, so ReadyForConnections would spin until its timeout. We
// record the message so Start can fail at once, and forward it as Errorf
// because the usual loggers exit the process on Fatalf.
type startLogger struct {
	next  server.Logger // nil: discard
	fatal chan string   // first fatal message; buffered, never blocks
}

func newStartLogger(next server.Logger) *startLogger {
	return &startLogger{next: next, fatal: make(chan string, 1)}
}

func (l *startLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	select {
	case l.fatal <- msg:
	default:
	}
	if l.next != nil {
		l.next.Errorf("fatal: %s", msg)
	}
}

func (l *startLogger) Noticef(format string, v ...any) {
	if l.next != nil {
		l.next.Noticef(format, v...)
	}
}

func (l *startLogger) Warnf(format string, v ...any) {
	if l.next != nil {
		l.next.Warnf(format, v...)
	}
}

func (l *startLogger) Errorf(format string, v ...any) {
	if l.next != nil {
		l.next.Errorf(format, v...)
	}
}

func (l *startLogger) Debugf(format string, v ...any) {
	if l.next != nil {
		l.next.Debugf(format, v...)
	}
}

func (l *startLogger) Tracef(format string, v ...any) {
	if l.next != nil {
		l.next.Tracef(format, v...)
	}
}
