import DequeModule
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Dedicated threads that run FillGuard's lanes, in place of Swift's shared thread pool: for a
/// deployment that gives FillGuard processors of its own (`processors`, which the threads are
/// bound to; keeping other threads off them is the host's part).
///
/// Pass it in `FillGuardConfiguration.runnerThreads`; several managers may share one. Lanes keep
/// every rule of the default scheduling (one pass at a time per lane, a busy lane queued behind
/// the others). An idle thread polls for `spin` before it sleeps; a sleeping one is woken when a
/// lane has events. When the threads are bound and have a processor each (no more threads than
/// `processors`), they poll without yielding (the processors are meant to be FillGuard's; see
/// `IdlePolling`); otherwise a polling thread yields now and then to the others on its processor.
/// You own the threads: call `shutdown()` when done (it lets them finish the lanes already
/// queued). After that, lanes run on Swift's thread pool again.
public final class RunnerThreads: @unchecked Sendable {
    /// How many threads run lanes.
    public let count: Int
    /// The processors the threads are bound to (empty: wherever the kernel puts them).
    public let processors: [Int]

    /// Guards the queue and the counts; never sleeps in the kernel (the fill path takes it).
    private let lock = SpinLock()
    /// Guarded by `lock`.
    @exclusivity(unchecked) private var state = State()
    /// `state.ready.count`, readable without the lock (polling threads read it).
    private let readyCount = Atomic<Int>(0)
    /// Set by `shutdown()`, readable without the lock: a polling thread stops polling at once.
    private let stopping = Atomic<Bool>(false)
    private let passes = Atomic<Int>(0)
    private let bound = Atomic<Int>(0)
    private let owning = Atomic<Int>(0)
    private let startedThreads = Atomic<Int>(0)
    private let createdThreads = Atomic<Int>(0)
    /// Sleeping threads wait on `condition` (with `mutex`) for a wake token.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// Guarded by `mutex`.
    private var wakeTokens = 0
    private var running = 0
    private var threads: [pthread_t] = []
    private let spinNanos: Int64
    private let name: String
    /// The distinct processors of `processors` this process may use.
    private let usableProcessors: Int

    private struct State {
        var ready = Deque<SymbolLane>()
        /// Threads polling for a lane.
        var spinning = 0
        /// Threads asleep (or about to be) with no wake token yet.
        var sleeping = 0
        var stopped = false
    }

    /// Starts `count` threads named `name-N`, each bound to `processors` when given (Linux), that
    /// poll for `spin` (at most 1 s) when idle before they sleep (ignored on a single processor).
    public init(count: Int = 1, processors: [Int] = [], spin: Duration = .zero, name: String = "fillguard-runner") {
        self.count = max(1, count)
        self.processors = processors
        self.usableProcessors = Set(processors).intersection(ProcessorAffinity.allowed()).count
        self.name = name
        // On a single processor a polling thread would only hold up the threads it waits for.
        let single = ProcessorAffinity.allowed().count == 1
        self.spinNanos = single ? 0 : IdlePolling.spinNanoseconds(spin)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
        pthread_mutex_lock(mutex)
        running = self.count
        for index in 0..<self.count {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(Start(threads: self, index: index)).toOpaque()
            let created = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                start.threads.serve(index: start.index)
                return nil
            }, context)
            if created == 0 {
                threads.append(thread)
            } else {
                Unmanaged<Start>.fromOpaque(context).release()
                running -= 1
            }
        }
        let started = running
        createdThreads.store(started, ordering: .releasing)
        pthread_mutex_unlock(mutex)
        // No thread could be started: lanes stay on Swift's thread pool.
        if started == 0 { state.stopped = true }
    }

    /// Lane passes these threads have run so far (each handles one or more events of one symbol).
    public var passesRun: Int { passes.load(ordering: .relaxed) }

    /// Threads that have started and bound themselves to `processors` (a processor this process
    /// may not use, or a system without binding, leaves a thread unbound: compare with `count`).
    public var threadsBound: Int { bound.load(ordering: .acquiring) }

    /// Threads that poll without yielding their processor: bound, with no more threads than
    /// processors (read after `waitUntilStarted()`).
    public var threadsPollingWithoutYielding: Int { owning.load(ordering: .acquiring) }

    /// Waits until every thread has started and tried its binding (at most a second); for callers
    /// that check `threadsBound` right after creating the threads.
    public func waitUntilStarted() {
        let deadline = IdlePolling.nanosecondsNow + 1_000_000_000
        while startedThreads.load(ordering: .acquiring) < createdThreads.load(ordering: .acquiring), IdlePolling.nanosecondsNow < deadline {
            sched_yield()
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Stops the threads once the lanes already queued have run, and waits for them to end. Lanes
    /// that get events afterwards run on Swift's thread pool. Call it once, not from a lane.
    public func shutdown() {
        lock.lock()
        state.stopped = true
        lock.unlock()
        // A thread polling for work would otherwise poll out its whole spin before it ends.
        stopping.store(true, ordering: .relaxed)
        pthread_mutex_lock(mutex)
        wakeTokens += count
        pthread_cond_broadcast(condition)
        let own = threads.contains { pthread_equal($0, pthread_self()) != 0 }
        while running > 0 && !own {
            pthread_cond_wait(condition, mutex)
        }
        let ended = own ? [] : threads
        if !own { threads = [] }
        pthread_mutex_unlock(mutex)
        for thread in ended { pthread_join(thread, nil) }
    }

    /// Queues a lane with events; false once shut down (the caller runs it elsewhere). A runner
    /// requeuing the lane it just ran (`byRunner`) wakes no other thread: it takes from the queue next.
    func submit(_ lane: SymbolLane, byRunner: Bool) -> Bool {
        lock.lock()
        guard !state.stopped else {
            lock.unlock()
            return false
        }
        state.ready.append(lane)
        readyCount.store(state.ready.count, ordering: .releasing)
        // Lanes that no polling thread will take wake a sleeping one.
        let wake = !byRunner && state.sleeping > 0 && state.ready.count > state.spinning
        if wake { state.sleeping -= 1 }
        lock.unlock()
        if wake {
            pthread_mutex_lock(mutex)
            wakeTokens += 1
            pthread_cond_signal(condition)
            pthread_mutex_unlock(mutex)
        }
        return true
    }

    /// What a new thread is given: the threads and its number.
    private final class Start {
        let threads: RunnerThreads
        let index: Int
        init(threads: RunnerThreads, index: Int) {
            self.threads = threads
            self.index = index
        }
    }

    /// What a thread with no lane in hand does next.
    private enum Next {
        case run(SymbolLane)
        case poll
        case sleep
        case exit
    }

    /// One thread's loop: run ready lanes; when none, poll for `spin`, then sleep until woken.
    private func serve(index: Int) {
        let pinned = !processors.isEmpty && ProcessorAffinity.pinCurrentThread(to: processors)
        if pinned { bound.add(1, ordering: .releasing) }
        // Bound, and no more threads than processors it may run on (each counted once, and only
        // one the process may use): nothing of ours waits for this processor.
        let ownsProcessor = pinned && count <= usableProcessors
        if ownsProcessor { owning.add(1, ordering: .relaxed) }
        startedThreads.add(1, ordering: .releasing)
        ThreadName.set("\(name)-\(index)")
        var scratch = SymbolLane.Scratch()
        var polled = false
        loop: while true {
            switch next(polled: polled) {
            case .run(let lane):
                lane.runPass(&scratch)
                passes.wrappingAdd(1, ordering: .relaxed)
                polled = false
            case .poll:
                poll(yielding: !ownsProcessor)
                lock.lock()
                state.spinning -= 1
                lock.unlock()
                polled = true
            case .sleep:
                pthread_mutex_lock(mutex)
                while wakeTokens == 0 { pthread_cond_wait(condition, mutex) }
                wakeTokens -= 1
                pthread_mutex_unlock(mutex)
                polled = false
            case .exit:
                break loop
            }
        }
        pthread_mutex_lock(mutex)
        running -= 1
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Takes the next ready lane, or decides (under the lock that `submit` takes, so that a lane
    /// queued meanwhile is never left without a thread) to poll, sleep or, once stopped, end.
    private func next(polled: Bool) -> Next {
        lock.lock()
        defer { lock.unlock() }
        if let lane = state.ready.popFirst() {
            readyCount.store(state.ready.count, ordering: .releasing)
            return .run(lane)
        }
        if state.stopped { return .exit }
        if spinNanos > 0 && !polled {
            state.spinning += 1
            return .poll
        }
        state.sleeping += 1
        return .sleep
    }

    /// Polls the ready count, without the lock, until a lane is queued or `spin` is up; an
    /// unbound thread (`yielding`) lets other threads on its processor run now and then.
    private func poll(yielding: Bool) {
        IdlePolling.waitForWork(readyCount, atMost: spinNanos, yielding: yielding, unless: stopping)
    }
}

/// Names the calling thread (Linux, for `top -H` and profilers; 15 characters at most).
enum ThreadName {
    static func set(_ name: String) {
        #if os(Linux)
        typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
        guard let function = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pthread_setname_np") else { return }
        _ = String(name.prefix(15)).withCString { unsafeBitCast(function, to: SetName.self)(pthread_self(), $0) }
        #endif
    }
}
