package main

import (
	"errors"
	"flag"
	"os"
	"runtime/pprof"
)

// cpuProfileFlag registers --cpuprofile FILE on fs and returns the
// function that ends the profile: cmdNode defers it, so a node stopped by
// SIGTERM (as `kvmesh bench --cpuprofile` stops it) writes a complete CPU
// profile to FILE and its allocation profile to FILE.allocs. Profiling
// starts when the flag is parsed.
func cpuProfileFlag(fs *flag.FlagSet) (stop func()) {
	var f *os.File
	fs.Func("cpuprofile", "write a CPU profile to `FILE` (and allocations to FILE.allocs) until the node stops; for kvmesh bench", func(path string) error {
		if f != nil {
			return errors.New("given twice")
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			out.Close()
			return err
		}
		f = out
		return nil
	})
	return func() {
		if f == nil {
			return
		}
		pprof.StopCPUProfile()
		f.Close()
		if a, err := os.Create(f.Name() + ".allocs"); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}
}
