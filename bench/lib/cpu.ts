/** CPU time of the processes involved in a cell: this one, the server children, the broker. */
import { readdirSync, readFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";

/** Microseconds of user+system CPU of a process from /proc (Linux); undefined elsewhere. */
export function procCpuMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks (100 Hz on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return undefined;
  }
}

/** The pid of the local RabbitMQ (Erlang VM), if it runs on this machine. */
export function brokerPid(): number | undefined {
  try {
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, "utf8").trim() === "beam.smp") return Number(d);
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no /proc */
  }
  return undefined;
}

export function selfCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export function childCpuMicros(child: ChildProcess | undefined): number | undefined {
  return child?.pid === undefined ? undefined : procCpuMicros(child.pid);
}
