package server

import (
	"context"
	"log/slog"
	"slices"
)

// Components are the parts of a process that log, each with its own level
// under [log] levels (the attribute "component" of their lines). dragonboat's
// own lines (component=dragonboat) have log.raft_level instead, which also
// keeps dragonboat from formatting the lines it would drop.
var Components = []string{"server", "supervisor", "router", "replica", "executor", "raftnet", "actor"}

// NewLogHandler returns a handler that passes h the records at or above the
// level of their component (levels[component], else level): a record's
// component is the "component" attribute of its logger (slog.Logger.With)
// or of the record itself.
func NewLogHandler(h slog.Handler, level slog.Level, levels map[string]slog.Level) slog.Handler {
	least := level
	for _, l := range levels {
		least = min(least, l)
	}
	return &componentHandler{h: h, level: level, levels: levels, least: least}
}

type componentHandler struct {
	h      slog.Handler
	level  slog.Level            // of records of no component, or one not in levels
	levels map[string]slog.Level // per component
	least  slog.Level            // the lowest level of all
	comp   string                // the component of this handler's logger ("": none said)
}

func (c *componentHandler) min(comp string) slog.Level {
	if l, ok := c.levels[comp]; ok {
		return l
	}
	return c.level
}

func (c *componentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	want := c.least // the record may yet name its component
	if c.comp != "" {
		want = c.min(c.comp)
	}
	return l >= want && c.h.Enabled(ctx, l)
}

func (c *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	comp := c.comp
	if comp == "" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" {
				comp = a.Value.String()
				return false
			}
			return true
		})
	}
	if r.Level < c.min(comp) {
		return nil
	}
	return c.h.Handle(ctx, r)
}

func (c *componentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *c
	n.h = c.h.WithAttrs(as)
	if i := slices.IndexFunc(as, func(a slog.Attr) bool { return a.Key == "component" }); i >= 0 {
		n.comp = as[i].Value.String()
	}
	return &n
}

func (c *componentHandler) WithGroup(name string) slog.Handler {
	n := *c
	n.h = c.h.WithGroup(name)
	return &n
}
