// scheduler-bench: time per Scheduler.next decision and memory per queued task.
//
//   scheduler-bench [--scenario mixed|saturated|all] [--tasks N] [--owners N] [--decisions N] [--seed N]
//
// Two scenarios, each on a fresh Scheduler filled with N tasks (default 100,000) over M owners (default 1,000):
//   mixed       10 owners hold 3,000-task batches, the rest share what is left; x86_64 60 %, aarch64 25 %, i386 15 %;
//               10 % SRPM, 20 % background (submitted up to 1 h ago, ageing 30 min, so tasks age during the run);
//               caps 3 per owner, 2 per (owner, arch), 700 per arch; 1 % of owners blocked; no i386 builder on
//               every 8th decision. Running is held at 1,500: each decision follows a finish once full, and each
//               dispatched or canceled task is replaced by a new one so the queue stays at N.
//   saturated   the same queue with a cap of 1 per owner and running held at (owners - 20): nearly every owner with
//               work is capped, so a scan over owners would visit almost all of them for each decision.
// Prints decision time (median, p99, max over --decisions, default 20,000), enqueue/finish/cancel medians, fill
// time and VmRSS growth per queued task. Exit status 1 when a p99 exceeds the 1 ms target. Run one scenario per
// process (bench/scheduler-bench does) for a clean memory figure: a second scenario reuses the first one's heap.
import Scheduling

#if canImport(Glibc)
import Glibc
#endif

@main
struct SchedulerBench {
    static func main() {
        var options = Options()
        options.parse(Array(CommandLine.arguments.dropFirst()))
        print(
            "scheduler-bench: \(options.tasks) tasks, \(options.owners) owners, \(options.decisions) decisions per scenario"
        )
        print("timer overhead: median \(format(timerOverhead())) per reading pair (included in the figures below)")
        var worst = Duration.zero
        if options.scenario != "saturated" {
            worst = max(worst, Scenario.run(name: "mixed", options: options, saturated: false).p99)
        }
        if options.scenario != "mixed" {
            worst = max(worst, Scenario.run(name: "saturated", options: options, saturated: true).p99)
        }
        print("target: p99 decision <= 1 ms: \(worst <= .milliseconds(1) ? "met" : "MISSED")")
        if worst > .milliseconds(1) { exit(1) }
    }
}

struct Options {
    var tasks = 100_000
    var owners = 1_000
    var decisions = 20_000
    var seed: UInt64 = 1
    var scenario = "all"

    mutating func parse(_ arguments: [String]) {
        var index = 0
        while index < arguments.count {
            let flag = arguments[index]
            if flag == "--scenario", index + 1 < arguments.count,
                ["mixed", "saturated", "all"].contains(arguments[index + 1])
            {
                self.scenario = arguments[index + 1]
                index += 2
                continue
            }
            guard index + 1 < arguments.count, let value = Int(arguments[index + 1]), value > 0 else {
                Self.usage("bad or missing value for \(flag)")
            }
            switch flag {
            case "--tasks": self.tasks = value
            case "--owners": self.owners = max(value, 30)
            case "--decisions": self.decisions = value
            case "--seed": self.seed = UInt64(value)
            default: Self.usage("unknown option \(flag)")
            }
            index += 2
        }
    }

    static func usage(_ message: String) -> Never {
        print(
            "scheduler-bench: \(message)\nusage: scheduler-bench [--scenario mixed|saturated|all] [--tasks N] "
                + "[--owners N] [--decisions N] [--seed N]"
        )
        exit(2)
    }
}

struct Result {
    var p99: Duration
}

/// Generates the workload; deterministic for a seed.
struct Workload {
    var random: SplitMix64
    let owners: Int
    var build = 0
    var now: Int64 = 1_795_000_000
    static let arches = ["x86_64", "aarch64", "i386"]
    static let bigOwners = 10

    init(seed: UInt64, owners: Int) {
        self.random = SplitMix64(seed: seed)
        self.owners = owners
    }

    /// Owner index for the next task: the first `bigOwners` get 3,000 tasks each during the fill (`fillIndex`),
    /// everything else is spread uniformly over the remaining owners.
    mutating func owner(fillIndex: Int?) -> Int {
        if let fillIndex, fillIndex < Self.bigOwners * 3_000 { return fillIndex / 3_000 }
        return Int.random(in: Self.bigOwners..<self.owners, using: &self.random)
    }

    mutating func task(fillIndex: Int? = nil) -> SchedulerTask {
        self.build += 1
        let owner = self.owner(fillIndex: fillIndex)
        let roll = Int.random(in: 0..<100, using: &self.random)
        let arch = roll < 60 ? "x86_64" : roll < 85 ? "aarch64" : "i386"
        let srpm = Int.random(in: 0..<10, using: &self.random) == 0
        let project = Int.random(in: 0..<3, using: &self.random)
        return SchedulerTask(
            id: srpm ? "\(self.build)" : "\(self.build)-fedora-41-\(arch)",
            kind: srpm ? .srpm : .rpm,
            owner: "user\(owner)",
            arch: arch,
            sandbox: "user\(owner)/project\(project)--user\(owner)",
            background: Int.random(in: 0..<5, using: &self.random) == 0,
            submitted: self.now - Int64.random(in: 0..<3_600, using: &self.random),
            sequence: UInt64(self.build)
        )
    }
}

enum Scenario {
    static func run(name: String, options: Options, saturated: Bool) -> Result {
        var workload = Workload(seed: options.seed, owners: options.owners)
        let configuration = SchedulerConfiguration(
            backgroundAgeing: 30 * 60,
            maxPerOwner: saturated ? 1 : 3,
            maxPerArch: saturated ? 0 : 700,
            maxPerOwnerArch: saturated ? 0 : 2
        )
        let runningTarget = saturated ? options.owners - 20 : 1_500
        let clock = ContinuousClock()

        let rssBefore = residentBytes()
        var scheduler = Scheduler(configuration: configuration)
        // Tasks are generated in batches outside the timed part, so the fill time is enqueue time only.
        var fill = Duration.zero
        var batch: [SchedulerTask] = []
        batch.reserveCapacity(1_000)
        for first in stride(from: 0, to: options.tasks, by: 1_000) {
            batch.removeAll(keepingCapacity: true)
            for index in first..<min(first + 1_000, options.tasks) { batch.append(workload.task(fillIndex: index)) }
            let start = clock.now
            for task in batch { scheduler.enqueue(task) }
            fill += clock.now - start
        }
        batch = []
        let rssAfter = residentBytes()
        let blocked = stride(from: Workload.bigOwners + 3, to: options.owners, by: 100).map { "user\($0)" }
        for owner in blocked { scheduler.setBlocked(owner: owner, true) }

        // Ramp up to the running target (not measured).
        var running: [String] = []
        running.reserveCapacity(runningTarget)
        while running.count < runningTarget, let task = scheduler.next(now: workload.now) {
            running.append(task.id)
            scheduler.enqueue(workload.task())
        }

        var decisions: [Duration] = []
        var enqueues: [Duration] = []
        var finishes: [Duration] = []
        var cancels: [Duration] = []
        decisions.reserveCapacity(options.decisions)
        var recent: [String] = []
        var empty = 0
        var servedOwners = Set<String>()
        for step in 0..<options.decisions {
            if step % 4 == 0 { workload.now += 1 }
            if running.count >= runningTarget {
                let index = Int.random(in: 0..<running.count, using: &workload.random)
                let id = running[index]
                running.swapAt(index, running.count - 1)
                running.removeLast()
                let start = clock.now
                scheduler.finished(id: id)
                finishes.append(clock.now - start)
            }
            let i386Down = step % 8 == 0
            let start = clock.now
            let task = scheduler.next(now: workload.now) { !(i386Down && $0 == "i386") }
            decisions.append(clock.now - start)
            guard let task else {
                empty += 1
                continue
            }
            running.append(task.id)
            servedOwners.insert(task.owner)
            let fresh = workload.task()
            let enqueueStart = clock.now
            scheduler.enqueue(fresh)
            enqueues.append(clock.now - enqueueStart)
            recent.append(fresh.id)
            if step % 10 == 0, recent.count > 1 {
                // Cancel a queued task from a few steps back and replace it.
                let victim = recent.removeFirst()
                let cancelStart = clock.now
                let removed = scheduler.remove(id: victim)
                cancels.append(clock.now - cancelStart)
                if removed { scheduler.enqueue(workload.task()) }
            }
            if recent.count > 50 { recent.removeFirst(recent.count - 50) }
        }

        decisions.sort()
        let p99 = percentile(decisions, 0.99)
        let capped = (0..<options.owners).filter { scheduler.running(owner: "user\($0)") >= configuration.maxPerOwner }
        print("")
        print(
            "[\(name)] caps: owner \(configuration.maxPerOwner), owner+arch \(configuration.maxPerOwnerArch), "
                + "arch \(configuration.maxPerArch) (0 = none); running target \(runningTarget); "
                + "\(blocked.count) owners blocked"
        )
        print("  fill:       \(options.tasks) tasks in \(format(fill)) (\(format(fill / options.tasks)) per enqueue)")
        if let rssBefore, let rssAfter {
            let grown = rssAfter - rssBefore
            print(
                "  memory:     VmRSS \(rssBefore / 1024) KiB -> \(rssAfter / 1024) KiB after fill, "
                    + "\(grown / options.tasks) bytes per queued task"
            )
        }
        print(
            "  at end:     \(scheduler.pendingCount) pending, \(scheduler.runningCount) running, "
                + "\(capped.count) owners at their cap, \(servedOwners.count) owners served, \(empty) empty decisions"
        )
        print(
            "  next():     median \(format(percentile(decisions, 0.5))), p99 \(format(p99)), "
                + "max \(format(decisions.last ?? .zero)) over \(decisions.count) decisions"
        )
        print(
            "  enqueue():  median \(format(percentile(enqueues.sorted(), 0.5)))   "
                + "finished(): median \(format(percentile(finishes.sorted(), 0.5)))   "
                + "remove(): median \(format(percentile(cancels.sorted(), 0.5)))"
        )
        return Result(p99: p99)
    }
}

/// Median cost of one `clock.now - clock.now` measurement around nothing.
func timerOverhead() -> Duration {
    let clock = ContinuousClock()
    var samples: [Duration] = []
    samples.reserveCapacity(10_000)
    for _ in 0..<10_000 {
        let start = clock.now
        samples.append(clock.now - start)
    }
    return percentile(samples.sorted(), 0.5)
}

func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
    guard !sorted.isEmpty else { return .zero }
    let index = min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction + 0.5))
    return sorted[index]
}

func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    if nanoseconds < 10_000 { return "\(Int(nanoseconds.rounded())) ns" }
    if nanoseconds < 10_000_000 { return "\(Int((nanoseconds / 1_000).rounded())) µs" }
    return "\(Int((nanoseconds / 1_000_000).rounded())) ms"
}

/// VmRSS of this process from /proc/self/status, in bytes; nil where there is no procfs.
func residentBytes() -> Int? {
    #if canImport(Glibc)
    guard let file = fopen("/proc/self/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(cString: line)
        guard text.hasPrefix("VmRSS:") else { continue }
        let digits = text.dropFirst(6).filter(\.isNumber)
        return Int(digits).map { $0 * 1024 }
    }
    #endif
    return nil
}

/// SplitMix64, so that runs are repeatable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
