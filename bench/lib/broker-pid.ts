/**
 * The pid of the local broker that serves a given port. Where several
 * RabbitMQ nodes run on one machine (test clusters next to the main node),
 * "the first beam.smp" may be the wrong one; this finds the beam.smp process
 * that owns the socket listening on the AMQP port (Linux /proc only).
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { brokerPid } from "./cpu.js";

/** Inodes of the TCP sockets listening on `port` (IPv4 and IPv6). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address:port, f[3] state (0A = LISTEN), f[9] inode
      if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === "0A") inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** The pid of the beam.smp listening on `port`; falls back to any beam.smp (see cpu.ts), or undefined. */
export function brokerPidOnPort(port: number): number | undefined {
  const inodes = listeningInodes(port);
  if (inodes.size > 0) {
    try {
      for (const d of readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        try {
          if (readFileSync(`/proc/${d}/comm`, "utf8").trim() !== "beam.smp") continue;
          for (const fd of readdirSync(`/proc/${d}/fd`)) {
            const target = readlinkSync(`/proc/${d}/fd/${fd}`);
            const m = /^socket:\[(\d+)\]$/.exec(target);
            if (m && inodes.has(m[1]!)) return Number(d);
          }
        } catch {
          /* gone, or not ours to read */
        }
      }
    } catch {
      /* no /proc */
    }
  }
  return brokerPid();
}
