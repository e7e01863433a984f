import Histogram
import Synchronization

/// The reaction-latency floor of this machine and method: the latency workload's pacing thread
/// hands each fill to a thread that does nothing but notice it (polling without yielding, as
/// FillGuard's bound runner thread does in the dedicated row). No rules, no broker, no allocation:
/// what is left is the hand-off between two threads and every moment either is not running
/// (another thread, the kernel, a hypervisor taking the vCPU).
/// FillGuard's latency cannot be lower; on a shared 2-vCPU machine its tail is set by these stalls.
enum LatencyFloor {
    /// Paces `fills` hand-offs at `rate` per second, exactly as `FillGuardWorkloads.latency` paces
    /// fills, and measures each from its intended time to when the other thread saw it; the first
    /// `warmup` hand-offs go first and are not recorded, as there.
    static func run(symbols: Int, rate: Int, fills: Int, warmup: Int = 0) async -> Measurement {
        let warmup = max(0, warmup)
        let sends = fills + warmup
        let sent = Atomic<Int>(0)
        let interval = 1e9 / Double(rate)
        let start = BenchClock.now() + 1_000_000
        // The taker stays off the pacer's processor, as FillGuard's runner threads do in the
        // dedicated row (unbound, the kernel sometimes time-slices it with the pacer).
        async let seen = FeedThread.run(name: "bench-floor-taker", besidePacer: true) { () -> Histogram<UInt64> in
            var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
            var taken = 0
            while taken < sends {
                let available = sent.load(ordering: .acquiring)
                // Polling without yielding, as a bound runner thread with a processor of its own does.
                if available == taken { continue }
                let now = BenchClock.now()
                while taken < available {
                    let intended = start + Int64(Double(taken) * interval)
                    if taken >= warmup { _ = histogram.record(UInt64(max(0, now - intended))) }
                    taken += 1
                }
            }
            return histogram
        }
        let (lastSent, lateness) = await FeedThread.run(name: "bench-pacer", pinned: true) { () -> (Int64, Histogram<UInt64>) in
            var last: Int64 = 0
            var lateness = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .two)
            for index in 0..<sends {
                let due = start + Int64(Double(index) * interval)
                while BenchClock.now() < due { BenchClock.yieldThread() }
                sent.store(index + 1, ordering: .releasing)
                last = BenchClock.now()
                if index >= warmup { _ = lateness.record(UInt64(max(0, last - due))) }
            }
            return (last, lateness)
        }
        let histogram = await seen
        func micros(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1_000 }
        var distribution: [LatencyPoint] = []
        for percentile in [0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100] {
            distribution.append(LatencyPoint(percentile: percentile, micros: percentile == 100 ? Double(histogram.max) / 1_000 : micros(percentile)))
        }
        return Measurement(
            workload: "latency", implementation: "floor",
            parameters: ["symbols": "\(symbols)", "rate": "\(rate)", "fills": "\(fills)", "latency": "0", "mix": "scalein"],
            metrics: ["samples": Double(histogram.totalCount), "p50Micros": micros(50), "p99Micros": micros(99),
                      "p999Micros": micros(99.9), "maxMicros": Double(histogram.max) / 1_000,
                      "achievedFillsPerSecond": Double(sends) / FillGuardWorkloads.seconds(max(1, lastSent - start)),
                      "warmupFills": Double(warmup),
                      "senderLateP99Micros": Double(lateness.valueAtPercentile(99)) / 1_000,
                      "senderLateMaxMicros": Double(lateness.max) / 1_000],
            notes: ["the machine's floor: the same pacing, handed to a thread that only notices each fill (no FillGuard)"],
            distribution: distribution)
    }
}
