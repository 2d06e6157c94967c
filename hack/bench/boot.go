package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/keelos/keel/internal/qemu"
)

// milestones are the console stamps init prints, in boot order.
var milestones = []string{"init", "modules-loaded", "onboot-done", "services-running"}

func milestoneRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`keel: milestone ` + regexp.QuoteMeta(name) + ` ([0-9.]+)`)
}

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat times; it
// is 100 on every architecture keel builds for.
const userHZ = 100

// initStat asks the getty shell about PID 1. The echoed command line
// cannot match initStatRE: its numbers come from $(…).
const initStat = `echo INITSTAT $(awk '/^VmRSS/{print "rss=" $2} /^RssAnon/{print "anon=" $2}' /proc/1/status) $(awk '{print "ticks=" $14+$15}' /proc/1/stat) $(awk '{print "uptime=" $1}' /proc/uptime)` + "\n"

var initStatRE = regexp.MustCompile(`INITSTAT rss=(\d+) anon=(\d+) ticks=(\d+) uptime=([0-9.]+)`)

// bootRun is what one boot measured; times in seconds.
type bootRun struct {
	toInit     float64 // wall time from QEMU start to the init milestone line
	uptime     map[string]float64
	rssKiB     float64
	anonKiB    float64 // of rssKiB, the anonymous part: heap, stacks, data
	cpu        float64 // init's utime+stime
	statUptime float64 // when init's RSS and CPU were read
}

func boots(ctx context.Context, cfg *config, rep *report, outputs string) error {
	base := filepath.Join(outputs, "host-"+cfg.arch)
	images := []struct{ name, path string }{
		{"kernel+initrd", base + "-kernel"},
		{"qcow2-efi", base + "-efi.qcow2"},
	}
	header := []string{"IMAGE", "QEMU→INIT (wall)"}
	for _, m := range milestones {
		header = append(header, m)
	}
	header = append(header, "INIT RSS", "ANON", "INIT CPU", "READ AT")
	s := rep.add(fmt.Sprintf("boot under QEMU (%s, 1 vCPU, 1 GiB), median of %d", accel(), cfg.runs), header...)
	for _, img := range images {
		var runs []bootRun
		for i := range cfg.runs {
			logf("boot %s: run %d of %d", img.name, i+1, cfg.runs)
			r, err := bootOnce(ctx, img.path, filepath.Join(cfg.work, fmt.Sprintf("console-%s-%d.log", img.name, i+1)))
			if err != nil {
				return fmt.Errorf("%s: %w", img.name, err)
			}
			runs = append(runs, r)
		}
		med := func(f func(bootRun) float64) float64 {
			v := make([]float64, len(runs))
			for i, r := range runs {
				v[i] = f(r)
			}
			return median(v)
		}
		row := []string{img.name, fmt.Sprintf("%.2f s", med(func(r bootRun) float64 { return r.toInit }))}
		for _, m := range milestones {
			row = append(row, fmt.Sprintf("%.2f s", med(func(r bootRun) float64 { return r.uptime[m] })))
		}
		row = append(row,
			fmt.Sprintf("%.1f MiB", med(func(r bootRun) float64 { return r.rssKiB })/1024),
			fmt.Sprintf("%.1f MiB", med(func(r bootRun) float64 { return r.anonKiB })/1024),
			fmt.Sprintf("%.2f s", med(func(r bootRun) float64 { return r.cpu })),
			fmt.Sprintf("%.1f s", med(func(r bootRun) float64 { return r.statUptime })))
		s.row(row...)
	}
	s.note("QEMU→INIT: wall time from starting QEMU to the `keel: milestone init` line (firmware, kernel, initramfs).")
	s.note("init … services-running: the guest's /proc/uptime at each milestone, as init stamps it.")
	s.note("INIT RSS / CPU: VmRSS and utime+stime (/ USER_HZ=%d) of PID 1, read through the getty shell", userHZ)
	s.note("once all services run, at guest uptime READ AT. ANON: RssAnon, the part of it that is init's heap, stacks and data;")
	s.note("the rest is /init's pages, counted as shared memory since init runs from a tmpfs.")
	return nil
}

func bootOnce(ctx context.Context, image, consoleLog string) (bootRun, error) {
	r := bootRun{uptime: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	start := time.Now()
	m, err := qemu.Start(ctx, qemu.Options{Image: image, Mem: 1024, ConsoleFile: consoleLog, Timeout: 11 * time.Minute})
	if err != nil {
		return r, err
	}
	defer m.Kill()
	if _, err := m.Expect(milestoneRE("init"), 5*time.Minute); err != nil {
		return r, err
	}
	r.toInit = time.Since(start).Seconds()
	if _, err := m.Expect(milestoneRE("services-running"), 5*time.Minute); err != nil {
		return r, err
	}
	console := m.Console()
	for _, name := range milestones {
		match := milestoneRE(name).FindStringSubmatch(console)
		if match == nil {
			return r, fmt.Errorf("no %q milestone on the console (see %s)", name, consoleLog)
		}
		r.uptime[name], _ = strconv.ParseFloat(match[1], 64)
	}
	// The shell may not be up yet: ask again until it answers.
	var stat []string
	for try := 0; stat == nil; try++ {
		if err := m.Send("\n" + initStat); err != nil {
			return r, err
		}
		stat, err = m.Expect(initStatRE, 20*time.Second)
		if err != nil && try == 5 {
			return r, fmt.Errorf("init's RSS and CPU through the getty shell: %w", err)
		}
	}
	rss, _ := strconv.ParseFloat(stat[1], 64)
	anon, _ := strconv.ParseFloat(stat[2], 64)
	ticks, _ := strconv.ParseFloat(stat[3], 64)
	r.rssKiB, r.anonKiB, r.cpu = rss, anon, ticks/userHZ
	r.statUptime, _ = strconv.ParseFloat(stat[4], 64)

	// Power down cleanly when the guest obliges; the numbers are in.
	if err := m.Powerdown(); err == nil {
		done := make(chan error, 1)
		go func() { done <- m.Wait() }()
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			fmt.Fprintf(os.Stderr, "bench: %s did not power off in 90 s; killed\n", filepath.Base(image))
		}
	}
	return r, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
