import FillGuardCore
import CoreMetrics
import Logging
import Synchronization

/// One symbol's serial lane: a FIFO mailbox of events and the symbol's state machine.
///
/// Ordering by construction: events are appended under a lock, and the lane runs one pass at a
/// time: the enqueue that flipped `draining` from false to true hands the lane to the
/// `LaneScheduler`, whose runner takes the waiting events in order and runs each to completion
/// before the next; the core is synchronous, so nothing interleaves. An idle lane holds no task
/// and no buffers, only its state. A busy lane goes back behind the other ready lanes every
/// `lanePassLimit` events so that one hot symbol cannot starve the others.
///
/// With a journal, a pass takes the waiting events, hands their input records (and the intents
/// and snapshot from the previous pass) to the journal, and continues only once they are
/// durable: then it sends the previous pass's operations and applies the new inputs. Nothing is
/// applied before it is journaled and nothing is sent before its intent is.
final class SymbolLane: @unchecked Sendable {
    enum Event: Sendable {
        case open(BracketSpec, reply: @Sendable (Result<Void, InputError>) -> Void)
        case broker(BrokerEvent)
        /// A broker's answer, with the breaker's ticket of its request; nil for an answer the
        /// runtime made itself (recovery's), which says nothing of the broker's health.
        case completed(OrderOperation, Result<Void, BrokerError>, breaker: BreakerTicket?)
        case retryDue(OrderID)
        case rearm(PositionID)
        case brokerQuantity(OrderID, Quantity)
        case adopt(OrderID, Side, OrderType, Quantity)
        case gateOpened
        /// Time to look for broker calls unanswered past `brokerAnswerTimeout`.
        case checkAnswers
        /// Time to look whether the fills a report's cumulative quantity announced for this order
        /// have come (`unreportedFillGrace` after it).
        case checkFillsReported(OrderID)
        /// Recovery has reconciled this lane with the broker: operations may go out.
        case reconciled
        /// Recovery found these entries and scale-ins never got by the broker, and refuses them
        /// (`UnsentEntryPolicy.refuse`): each is answered refused, never sent.
        case refuseUnsentEntries([OrderID])
        /// A clean shutdown: snapshot the state now if records came since the last snapshot, so
        /// that the next start replays no record (and a newer build, whose rules may differ,
        /// need not re-derive them).
        case snapshotNow
        case read(@Sendable (SymbolStateMachine) -> Void)
    }

    struct Envelope: Sendable {
        var event: Event
        /// When it was queued, in nanoseconds since `SymbolLane.epoch`; 0 when nothing reads it (no
        /// metrics backend, no reaction observer). An integer, not a `ContinuousClock.Instant`:
        /// that type is resilient, so every copy of an envelope holding one went through value
        /// witnesses.
        var enqueuedAt: Int64
        /// The journal sequence of the input (0: not journaled).
        var sequence: UInt64 = 0
    }

    /// The origin of envelope timestamps.
    static let epoch = ContinuousClock.now

    /// Nanoseconds since `epoch`.
    static var nanosecondsNow: Int64 { (ContinuousClock.now - epoch).nanoseconds }

    /// What a runner lends the lane it runs: the action buffer, reused from event to event and
    /// lane to lane, so that a lane waking up allocates none and an idle lane holds none.
    struct Scratch {
        var actions: [SymbolStateMachine.Action] = []
    }

    /// What the circuit breaker gave a request: the period it was let through in, and whether
    /// it was the probe. Its outcome is recorded with it.
    struct BreakerTicket: Sendable, Hashable {
        /// The breaker's period when the request was let through.
        var period: UInt32
        /// The request was the breaker's probe.
        var isProbe: Bool
    }

    /// An operation taken from the machine, sent once its intent is durable.
    private struct PendingSend: Sendable {
        var operation: OrderOperation
        var ticket: BreakerTicket
        /// When the fill it reacts to was queued (0: it reacts to none): its reaction is taken
        /// when it goes out, after its intent's write.
        var reactionFrom: Int64 = 0
    }

    private struct Mailbox: ~Copyable {
        var events = EventQueue()
        var draining = false
    }

    let symbol: Symbol
    private let mailboxLock = SpinLock()
    /// Guarded by `mailboxLock` (see `withMailbox`).
    @exclusivity(unchecked) private var mailboxState = Mailbox()
    private let context: RuntimeContext
    // Touched only by the current drainer (see the type's documentation).
    // Drainer-owned (one runner at a time, by construction): no dynamic exclusivity checks.
    @exclusivity(unchecked) private var machine: SymbolStateMachine
    /// Events taken from the mailbox (all of them, in one swap) and not yet processed.
    @exclusivity(unchecked) private var pending = EventQueue()
    /// When the wake-up scheduled for held work comes (nanoseconds since `epoch`); 0: none is.
    @exclusivity(unchecked) private var wakeAt: Int64 = 0
    /// The timer of that wake-up: cancelled (it then never fires) when the gate opens sooner, so
    /// that a wait no longer needed does not hold up `waitUntilIdle()`.
    @exclusivity(unchecked) private var wakeTimer: Task<Void, Never>?
    /// A lane rebuilt from the journal sends nothing until recovery has reconciled it (`.reconciled`):
    /// an order the rebuilt state has as unsent may already be at the broker.
    @exclusivity(unchecked) private var operationsHeld: Bool
    /// A `.snapshotNow` came in this pass (journaled lanes take it at the pass's end).
    @exclusivity(unchecked) private var snapshotRequested = false
    @exclusivity(unchecked) private var rearmScheduled: Set<PositionID> = []
    /// When the oldest fill not yet followed by an operation of the stop-loss (0) and of the
    /// take-profit (1) was queued (0: none): a fill whose protective work goes out later (behind
    /// an operation in flight, a breaker, a rate limit, a retry) has its reaction measured then,
    /// not left out.
    @exclusivity(unchecked) private var reactionPendingSince: (stop: Int64, target: Int64) = (0, 0)
    /// Calls sent and watched for their answer deadline (drainer-owned); nil while none is
    /// (an idle lane holds nothing).
    @exclusivity(unchecked) private var answerWatch: AnswerWatch?
    /// Since when the circuit breaker has held this lane's work back, and the orders alerted as
    /// held since (drainer-owned); nil while the breaker lets it send.
    @exclusivity(unchecked) private var heldByBreaker: HeldByBreaker?
    /// Since when the circuit breaker has held back each entry's or scale-in's submit, until it is
    /// sent or ends (drainer-owned; see `refuseOverdueOpenings`). Kept across the breaker's
    /// closings and reopenings: only a send ends an order's wait.
    @exclusivity(unchecked) private var openingsHeldSince: [OrderID: ContinuousClock.Instant] = [:]
    /// See `heldByBreaker`: allocated only while the breaker holds the lane back.
    private final class HeldByBreaker {
        let since: ContinuousClock.Instant
        /// The breaker's `closings` when the hold began: once it reads otherwise, the breaker
        /// closed since, and a denial now is a new hold.
        let closings: UInt32
        var alerted: Set<OrderID> = []
        init(since: ContinuousClock.Instant, closings: UInt32) {
            self.since = since
            self.closings = closings
        }
    }
    /// The thread inside `send` on this lane (0: none). A callback broker that answers on that
    /// thread before `send` returns (a broker that needs no wait) has its answer put straight in
    /// `pending`, handled later in the same pass: no mailbox lock, no second pass.
    private let sendingThread = Atomic<UInt>(0)
    /// Events taken from the mailbox into `pending` and not handled yet, as of the start and the
    /// end of the current pass (a hot lane works through a deep backlog over several passes): counted in the
    /// queue-depth metric, which would read low while a symbol is backlogged without them.
    private let backlog = Atomic<Int>(0)
    /// What a journaled lane keeps between passes (drainer-owned). Allocated only with a journal,
    /// so that an idle lane without one stays small.
    private final class JournalState {
        /// See `JournalPosition`.
        var position: JournalPosition
        var pendingRecords: [JournalRecord] = []
        var pendingSends: [PendingSend] = []
        var halted: JournalError?
        init(position: JournalPosition) { self.position = position }
    }
    private let journalState: JournalState?
    private var position: JournalPosition {
        get { journalState?.position ?? JournalPosition() }
        // Journaled paths only (the state exists): in place, no copy of the arrays.
        _modify { yield &journalState!.position }
    }
    private var pendingRecords: [JournalRecord] {
        get { journalState?.pendingRecords ?? [] }
        // Journaled paths only (the state exists): in place, no copy of the arrays.
        _modify { yield &journalState!.pendingRecords }
    }
    private var pendingSends: [PendingSend] {
        get { journalState?.pendingSends ?? [] }
        // Journaled paths only (the state exists): in place, no copy of the arrays.
        _modify { yield &journalState!.pendingSends }
    }
    private var halted: JournalError? {
        get { journalState?.halted }
        // Journaled paths only (the state exists): in place, no copy of the arrays.
        _modify { yield &journalState!.halted }
    }

    init(symbol: Symbol, context: RuntimeContext, machine: SymbolStateMachine? = nil, position: JournalPosition = JournalPosition(),
         holdingOperations: Bool = false) {
        self.symbol = symbol
        self.context = context
        self.operationsHeld = holdingOperations
        self.machine = machine ?? SymbolStateMachine(symbol: symbol, configuration: context.machineConfiguration)
        self.journalState = context.journal == nil ? nil : JournalState(position: position)
    }

    /// Runs `body` on the mailbox under its lock.
    @inline(__always)
    private func withMailbox<R>(_ body: (inout Mailbox) -> R) -> R {
        mailboxLock.lock()
        defer { mailboxLock.unlock() }
        return body(&mailboxState)
    }

    /// Appends an event; has the lane run if it is not running. Never blocks on processing.
    /// `workBegun`: the caller has already begun the unit of work the event counts as (a
    /// broker's answer takes over its call's), which ends when the event is handled.
    func enqueue(_ event: consuming Event, workBegun: Bool = false) {
        if context.lifecycle.load(ordering: .relaxed) == .stopped, !event.isAnsweredAfterShutdown {
            if workBegun { context.work.end() }
            dropAfterShutdown(event)
            return
        }
        let now = context.timed ? Self.nanosecondsNow : 0
        // A read of the state (`position()`, a monitor's poll) is no work of the lane's: left out
        // of the queue metrics, which a poller would otherwise fill with its own reads.
        let measured = context.metrics.enabled && !event.isRead
        if !workBegun { context.work.begin() }
        // Moved, not copied, into the mailbox (an event is ~150 bytes with several references):
        // the lock is taken by hand so that no closure captures the event.
        mailboxLock.lock()
        // A lane waking up starts with room for a few events: a pooled buffer (see
        // `EnvelopeBufferPool`), not an allocation per wake-up and a free on another thread.
        if !mailboxState.events.hasBuffer {
            mailboxState.events.install(context.envelopeBuffers.take(), capacity: EnvelopeBufferPool.bufferCapacity)
        }
        mailboxState.events.append(Envelope(event: event, enqueuedAt: now))
        let depth = mailboxState.events.count
        let start = !mailboxState.draining
        mailboxState.draining = true
        mailboxLock.unlock()
        if measured { context.metrics.queueDepth.record(depth + backlog.load(ordering: .relaxed)) }
        if start { context.scheduler.schedule(self) }
    }

    /// Refuses `event` if a shutdown rules it out now, and says so: after the stop, anything but
    /// a read or the lane's own bookkeeping; once the shutdown began, a new bracket too (its
    /// `open` passed before, but `shutdown()` may already have found the manager idle: placed
    /// now, its entry would go out unwatched, its fill never protected).
    private func refusedForShutdown(_ event: Event) -> Bool {
        switch context.lifecycle.load(ordering: .relaxed) {
        case .stopped:
            guard !event.isAnsweredAfterShutdown else { return false }
            dropAfterShutdown(event)
            return true
        case .draining:
            guard case .open(let spec, _) = event else { return false }
            refuse(event, as: InputError(.shutDown, "position \(spec.positionID) not opened: the manager is shutting down"))
            return true
        case .awaitingRecovery, .recovering, .running:
            return false
        }
    }

    /// An event that comes after `FillManager.shutdown()` stopped the manager: a new bracket or a
    /// report is refused (`shutDown`), a broker's answer is noted, anything else (a timer's
    /// event) is dropped. None is applied; with a journal, the next start asks the broker.
    private func dropAfterShutdown(_ event: consuming Event) {
        if case .completed(let operation, _, _) = event {
            context.logger.notice("broker answer after shutdown not applied: \(operation)", metadata: ["symbol": "\(symbol)"])
        }
        refuse(event, as: InputError(.shutDown, "not applied: the manager was shut down"))
    }

    /// Runs one pass of the lane (called by the scheduler, by one runner at a time): handles up to
    /// `lanePassLimit` events, then either goes idle or queues itself again behind other lanes.
    /// Returns the number of events handled.
    @discardableResult
    func runPass(_ scratch: inout Scratch) -> Int {
        if context.journal != nil {
            // A journaled lane continues on its own, from the journal's write callbacks.
            drainJournaled()
            return 1
        }
        let limit = context.configuration.lanePassLimit
        // Take every waiting event in one swap (one lock per pass, not per event): the mailbox
        // gets the empty buffer back. A deep mailbox (a hot symbol) is handled over several
        // passes from `pending`, without moving its events again.
        if pending.isEmpty {
            withMailbox { mailbox in pending.swapContents(with: &mailbox.events) }
            if context.metrics.enabled { backlog.store(pending.count, ordering: .relaxed) }
        }
        let fills = drain(limit: limit, actions: &scratch.actions, machine: &machine)
        if fills.fills > 0 { context.counters.fills.wrappingAdd(fills.fills, ordering: .relaxed) }
        if context.metrics.enabled { backlog.store(pending.count, ordering: .relaxed) }
        var spare = SpareBuffers()
        let more = !pending.isEmpty || withMailbox { mailbox -> Bool in
            if !mailbox.events.isEmpty { return true }
            // Idle: the lane keeps no buffer (an idle symbol costs its state only). Taken before
            // `draining` is cleared: after that another runner may own the lane.
            spare.take(from: &mailbox.events)
            spare.take(from: &pending)
            mailbox.draining = false
            return false
        }
        // Given back to the pool outside the mailbox's lock: the pool's lock is shared by every
        // lane, and a feed delivering to this lane would spin meanwhile.
        spare.give(to: context.envelopeBuffers)
        context.work.end(fills.handled)
        if more {
            // Still busy: behind the other ready lanes, so one hot symbol cannot starve them.
            context.scheduler.schedule(self, byRunner: true)
        }
        return fills.handled
    }

    /// The buffers an idle lane gives up, taken under its mailbox's lock and given to the pool
    /// after it.
    private struct SpareBuffers {
        private var first: UnsafeMutablePointer<Envelope>?
        private var second: UnsafeMutablePointer<Envelope>?

        /// Empties `queue` and keeps its buffer (when it is a pooled size; another is freed).
        mutating func take(from queue: inout EventQueue) {
            guard let buffer = queue.removeAllAndTakeBuffer(ifCapacity: EnvelopeBufferPool.bufferCapacity) else { return }
            if first == nil { first = buffer } else { second = buffer }
        }

        /// Hands the buffers kept to the pool.
        func give(to pool: EnvelopeBufferPool) {
            if let first { pool.give(first) }
            if let second { pool.give(second) }
        }
    }

    /// Processes up to `limit` pending events; one exclusive access to the machine for the whole
    /// pass. Returns the events handled and the fills applied.
    private func drain(limit: Int, actions: inout [SymbolStateMachine.Action], machine: inout SymbolStateMachine) -> (handled: Int, fills: Int) {
        var handled = 0
        var fills = 0
        while handled < limit, let envelope = pending.popFirst() {
            handled += 1
            // Queued before the stop but not reached by then (a shutdown whose limit passed):
            // refused, as if it came after it. Nothing is applied once the manager stopped.
            if refusedForShutdown(envelope.event) { continue }
            if process(consume envelope, machine: &machine, actions: &actions) { fills += 1 }
        }
        return (handled, fills)
    }

    /// Journaled passes: write, then (in the callback) send and apply. See the type's notes. A
    /// pass with nothing to write (after the journal failed, or events that are not inputs) is
    /// completed here and the next one taken in a loop, not by recursion: a flood of reports
    /// refused after a journal failure must not grow the stack.
    private func drainJournaled() {
        guard let journal = context.journal else { return }
        // Events of passes completed here: they stop counting as work once the next write (which
        // holds the sends they produced) counts, as in `finishPass`.
        var completed = 0
        defer { if completed > 0 { context.work.end(completed) } }
        while true {
            if takeJournaledPass(journal, completed: &completed) { return }
        }
    }

    /// Takes one journaled pass: true when it is done for now (idle, or a write is in flight
    /// that will continue in `finishPass`), false when it completed a pass that wrote nothing.
    private func takeJournaledPass(_ journal: Journal, completed: inout Int) -> Bool {
        let limit = context.configuration.lanePassLimit
        let hasPending = !pendingRecords.isEmpty || !pendingSends.isEmpty
        var spare = SpareBuffers()
        var batch = withMailbox { mailbox -> [Envelope] in
            var batch: [Envelope] = []
            while batch.count < limit, let envelope = mailbox.events.popFirst() { batch.append(envelope) }
            if batch.isEmpty && !hasPending {
                // Idle, as in `runPass`: the lane keeps no buffer.
                spare.take(from: &mailbox.events)
                mailbox.draining = false
            }
            return batch
        }
        spare.give(to: context.envelopeBuffers)
        if batch.isEmpty && !hasPending { return true }
        if context.lifecycle.load(ordering: .relaxed).isShuttingDown {
            // Queued before the stop but not reached by then (or a bracket, once the shutdown
            // began): refused, neither journaled nor applied (as on a lane without a journal).
            let before = batch.count
            var kept: [Envelope] = []
            for envelope in batch where !refusedForShutdown(envelope.event) { kept.append(envelope) }
            batch = kept
            completed += before - batch.count
        }
        var records = pendingRecords
        pendingRecords = []
        if halted == nil {
            for index in batch.indices {
                guard let input = batch[index].event.journalInput else { continue }
                position.lastInput += 1
                batch[index].sequence = position.lastInput
                records.append(JournalRecord(symbol: symbol, sequence: JournalPosition.sequence(input: position.lastInput),
                                             kind: .input, payload: JournalCodec.encode(input)))
            }
        }
        let sends = pendingSends
        pendingSends = []
        if records.isEmpty || halted != nil {
            completePass(.success(()), sends: sends, batch: batch)
            completed += batch.count
            return false
        }
        let ready = batch
        // Taken and not handled until the write is done: in the queue depth meanwhile.
        if context.metrics.enabled { backlog.store(batch.count, ordering: .relaxed) }
        // The write in flight is work: waitUntilIdle() waits for it and what follows it.
        context.work.begin()
        journal.append(records) { result, attempted in
            Task.detached {
                self.finishPass(result, attempted: attempted, sends: sends, batch: ready)
                self.context.work.end()
            }
        }
        return true
    }

    /// A write is done: complete its pass and take the next ones.
    private func finishPass(_ result: Result<Void, JournalError>, attempted: Bool, sends: [PendingSend], batch: [Envelope]) {
        completePass(result, writeAttempted: attempted, sends: sends, batch: batch)
        drainJournaled()
        // The batch's events stop counting as work only now: the operations they produced wait
        // in `pendingSends` for their intents' write, which drainJournaled() has just counted.
        // Ending them in the loop let waitUntilIdle() return in between, before those sends.
        context.work.end(batch.count)
    }

    /// Sends what the pass's write made durable (or refuses it all, once the journal failed) and
    /// applies its events.
    private func completePass(_ result: Result<Void, JournalError>, writeAttempted: Bool = false, sends: [PendingSend], batch: [Envelope]) {
        // A write of this batch that failed: whether the store kept it is not known (a commit
        // whose answer was lost). A batch the journal refused, having failed before, was never
        // written.
        var outcomeUnknown = false
        if case .failure(let error) = result, halted == nil {
            halted = error
            outcomeUnknown = writeAttempted
            context.journalFailed(error, symbol: symbol)
        }
        if halted == nil {
            // The broker's latency counts from now, when the operation goes out, not from when it
            // was taken (its intent's write came between).
            let now: Int64 = (context.metrics.enabled || sends.contains { $0.reactionFrom != 0 }) && !sends.isEmpty ? Self.nanosecondsNow : 0
            for send in sends {
                if send.reactionFrom != 0 { recordReaction(from: send.reactionFrom, at: now) }
                self.send(send.operation, ticket: send.ticket, sentAt: now)
            }
        } else if !sends.isEmpty {
            context.logger.critical("\(sends.count) operations not sent: the journal failed", metadata: ["symbol": "\(symbol)"])
            // A probe among them never reaches the broker: given back, or the breaker would wait
            // for its answer for good.
            if sends.contains(where: \.ticket.isProbe) { context.breaker.releaseProbe() }
        }
        var actions: [SymbolStateMachine.Action] = []
        for envelope in batch {
            if let halted, envelope.sequence != 0 || envelope.event.journalInput != nil {
                refuse(envelope.event, because: halted, mayBeStored: outcomeUnknown && envelope.sequence != 0)
            } else if process(envelope, machine: &machine, actions: &actions) {
                context.counters.fills.wrappingAdd(1, ordering: .relaxed)
            }
        }
        if halted == nil, let journal = context.journal,
           position.sinceSnapshot >= journal.snapshotInterval || (snapshotRequested && position.sinceSnapshot > 0) {
            takeSnapshot()
        }
        snapshotRequested = false
        if context.metrics.enabled { backlog.store(0, ordering: .relaxed) }
    }

    private func takeSnapshot() {
        guard let payload = try? SnapshotCodec.encode(machine.image) else { return }
        pendingRecords.append(JournalRecord(symbol: symbol, sequence: position.current, kind: .snapshot, payload: payload))
        position.sinceSnapshot = 0
    }

    /// Refuses an event the journal could not take. One whose write failed (`mayBeStored`) may
    /// have been kept by the store all the same (a commit whose answer was lost): a restart then
    /// replays it, which the refusal says, so that no one opens the bracket again under a new id.
    private func refuse(_ event: Event, because error: JournalError, mayBeStored: Bool = false) {
        let message = mayBeStored
            ? "not applied: the journal's write of it failed (\(error)); the store may have kept it all the same, and a restart would then replay it: after recovering, look before sending it again"
            : "not applied: \(error)"
        refuse(event, as: InputError(.journalUnavailable, message))
    }

    /// An event that is not applied: a new bracket or a report is recorded as refused (and the
    /// open answered); any other event is dropped.
    private func refuse(_ event: Event, as refusal: InputError) {
        switch event {
        case .open(let spec, let reply):
            context.reject(refusal, context: "open \(spec.positionID) on \(symbol)")
            reply(.failure(refusal))
        case .broker(let event):
            context.reject(refusal, context: "report for \(event.symbol)")
        case .completed(_, let result, let ticket?) where ticket.isProbe:
            if context.lifecycle.load(ordering: .relaxed) == .stopped {
                // After shutdown (when the watchdog gives up every call it watches, an answer it
                // makes itself): no news of the broker. The probe is given back.
                context.breaker.releaseProbe()
            } else {
                // The broker did answer the breaker's probe: its health counts (the probe is
                // given back) though this lane cannot apply the answer; otherwise the breaker
                // would stay half open, every lane held, for good.
                recordBreakerOutcome(result, ticket: ticket)
            }
        default:
            break
        }
    }

    /// Feeds an answer's outcome to the circuit breaker; lanes it held send again if it closed.
    private func recordBreakerOutcome(_ result: Result<Void, BrokerError>, ticket: BreakerTicket) {
        let transientFailure = result.brokerErrorKind?.isRetryable == true
        // The common case (a healthy breaker's answer) changes nothing: not even a call.
        if context.breaker.ignores(transientFailure: transientFailure, wasProbe: ticket.isProbe) { return }
        let (opened, held) = context.breaker.recordOutcome(
            transientFailure: transientFailure, wasProbe: ticket.isProbe, period: ticket.period, now: ContinuousClock.now)
        // It closed: the lanes it held send now, not when they were told to ask again.
        for lane in held { lane.breakerClosed() }
        if opened {
            context.metrics.breakerTrips.increment()
            context.logger.warning("circuit breaker opened", metadata: ["symbol": "\(symbol)"])
        }
    }

    /// Applies one event to the machine and acts on what it says. Returns true for an applied fill.
    private func process(_ envelope: consuming Envelope, machine: inout SymbolStateMachine,
                         actions: inout [SymbolStateMachine.Action]) -> Bool {
        if envelope.sequence != 0 {
            position.startInput(envelope.sequence)
        }
        let timed = context.metrics.enabled && !envelope.event.isRead
        let started: Int64 = timed ? Self.nanosecondsNow : 0
        let enqueuedAt = envelope.enqueuedAt
        if timed {
            context.metrics.queueWait.recordNanoseconds(started - enqueuedAt)
        }
        actions.removeAll(keepingCapacity: true)
        // Change actions only feed subscribers: without any, the machine does not emit them.
        machine.emitsChangeActions = context.bus.positions.hasSubscribers || context.bus.orders.hasSubscribers
        var isFill = false
        // The event is moved out of the envelope, and its payload out of the event: a copy of
        // either (a report, an operation: over a hundred bytes with references) costs on every fill.
        let event = (consume envelope).event
        switch consume event {
        case .open(let spec, let reply):
            do throws(InputError) {
                try machine.open(spec, emitting: &actions)
                reply(.success(()))
            } catch {
                context.reject(error, context: "open \(spec.positionID) on \(symbol)")
                reply(.failure(error))
            }
        case .broker(.execution(let report)):
            do throws(InputError) {
                try machine.apply(report, emitting: &actions)
                if timed { context.metrics.fills.increment() }
                isFill = true
            } catch {
                context.reject(context.refined(error, orderID: report.orderID, reportedSymbol: symbol),
                               context: "execution \(report.executionID) for order \(report.orderID) on \(symbol)")
                // A fill of a known order refused as impossible may still be a trade at the broker.
                if let alert = machine.alert(forRefused: report, error) { actions.append(.alert(alert)) }
                // So is one of an order recovery left working unknown to the journal.
                if error.code == .unknownOrder { context.alertIfOrphanFilled(report) }
            }
        case .broker(.orderStatus(let report)):
            do throws(InputError) {
                try machine.apply(report, emitting: &actions)
            } catch {
                context.reject(context.refined(error, orderID: report.orderID, reportedSymbol: symbol),
                               context: "status of order \(report.orderID) on \(symbol)")
            }
        case .broker(.correction(let orderID, _, let message)):
            // Not applied: recorded as refused, and alerted for a person.
            context.reject(InputError(.brokerCorrection, message), context: "correction for order \(orderID) on \(symbol)")
            let order = machine.snapshot(of: orderID)
            if let positionID = order?.positionID ?? SymbolStateMachine.positionID(ofOrder: orderID) {
                actions.append(.alert(Alert(kind: .brokerCorrection, positionID: positionID, symbol: symbol, orderID: orderID,
                                            role: order?.role, message: message)))
            }
        case .broker(.refused(let error, let refusedContext, _)):
            // FillManager.receive records these without a lane; one reaching a lane changes nothing either.
            context.reject(error, context: refusedContext)
        case .completed(let operation, let result, let ticket):
            if let ticket { recordBreakerOutcome(result, ticket: ticket) }
            if timed { context.metrics.breakerState.record(context.breaker.state.rawValue) }
            switch result {
            case .success:
                machine.operationSucceeded(operation, emitting: &actions)
            case .failure(let error):
                if error.kind == .notSent { context.counters.notSent.wrappingAdd(1, ordering: .relaxed) }
                // (Without a ticket, the answer is not the broker's: recovery's, or FillGuard's own refusal.)
                context.logger.notice("\(ticket == nil ? "failed" : "broker refused") \(operation)", metadata: ["symbol": "\(symbol)", "error": "\(error)"])
                machine.operationFailed(operation, error.operationFailure, emitting: &actions)
            }
        case .retryDue(let orderID):
            machine.retryDue(orderID, emitting: &actions)
        case .rearm(let positionID):
            rearmScheduled.remove(positionID)
            machine.rearm(positionID, emitting: &actions)
        case .brokerQuantity(let id, let quantity):
            machine.adoptBrokerQuantity(id, quantity: quantity, emitting: &actions)
        case .adopt(let id, let side, let type, let quantity):
            machine.adopt(id, side: side, type: type, quantity: quantity, filled: .zero, emitting: &actions)
        case .gateOpened:
            wakeAt = 0
            wakeTimer?.cancel()
            wakeTimer = nil
            // The breaker closed: a hold is over, even for a lane left with nothing to send.
            // (An entry it held back too long is refused when it would go: `dispatchOperations`.)
            if heldByBreaker != nil, context.breaker.state == .closed { heldByBreaker = nil }
            // Woken to take back a probe it gave back (its rate limit), with nothing to send now:
            // the lanes held behind it are told the probe is free.
            if !machine.hasOperationReady || operationsHeld { context.breaker.offerFreeProbe() }
        case .checkAnswers:
            checkAnswers()
        case .checkFillsReported(let id):
            // Still missing: alerted (the manager then asks the broker for the symbol's fills).
            if let alert = machine.unreportedFillsAlert(for: id) { actions.append(.alert(alert)) }
        case .reconciled:
            operationsHeld = false
        case .refuseUnsentEntries(let ids):
            for id in ids {
                refuseOpenings(machine: &machine, of: id, UnsentEntryPolicy.refusal)
            }
        case .snapshotNow:
            snapshotRequested = context.journal != nil
        case .read(let reader):
            reader(machine)
        }
        if !actions.isEmpty { perform(actions, machine: machine) }
        // Only when the machine has something to send (most fills only move desired state while
        // a modify is in flight): no clock, breaker or bucket otherwise.
        if isFill, context.timed {
            if reactionPendingSince.stop == 0 { reactionPendingSince.stop = max(1, enqueuedAt) }
            if reactionPendingSince.target == 0 { reactionPendingSince.target = max(1, enqueuedAt) }
        }
        if machine.hasOperationReady && !operationsHeld {
            dispatchOperations(machine: &machine)
        }
        // Nothing waits (the fill needed no more protective work, or it went): none is due.
        if reactionPendingSince != (0, 0), machine.isQuiescent { reactionPendingSince = (0, 0) }
        if timed {
            context.metrics.processing.recordNanoseconds(Self.nanosecondsNow - started)
        }
        return isFill
    }

    private func perform(_ actions: [SymbolStateMachine.Action], machine: borrowing SymbolStateMachine) {
        for action in actions {
            switch action {
            case .scheduleRetry(let orderID, let attempt):
                context.metrics.retries.increment()
                context.counters.retries.wrappingAdd(1, ordering: .relaxed)
                let delay = context.configuration.retry.delay(beforeRetry: attempt, unit: Double.random(in: 0..<1))
                schedule(after: delay, .retryDue(orderID))
            case .scheduleRearm(let positionID):
                guard let delay = context.configuration.rearmDelay, rearmScheduled.insert(positionID).inserted else { break }
                // Maintenance, not work: it does not hold up waitUntilIdle().
                let instant = ContinuousClock.now + delay
                Task {
                    try? await Task.sleep(until: instant, clock: .continuous)
                    // Once shutting down, a cool-down is left to the next start (README): a
                    // re-arm now would journal a record after the shutdown's snapshot.
                    let stage = self.context.lifecycle.load(ordering: .relaxed)
                    guard stage != .draining, stage != .stopped else { return }
                    self.enqueue(.rearm(positionID))
                }
            case .checkFillsReported(let id):
                // Counted as work: waitUntilIdle() waits for the check, and the fills it may fetch.
                schedule(after: context.configuration.unreportedFillGrace, .checkFillsReported(id))
            case .positionChanged(let id):
                if context.bus.positions.hasSubscribers, let snapshot = machine.snapshot(of: id) { context.bus.positions.publish(snapshot) }
            case .orderChanged(let id):
                if context.bus.orders.hasSubscribers, let snapshot = machine.snapshot(of: id) { context.bus.orders.publish(snapshot) }
            case .alert(var alert):
                if alert.kind == .operationHeld, let held = heldByBreaker, let orderID = alert.orderID,
                   !held.alerted.insert(orderID).inserted {
                    // Alerted as held by the breaker already, in this hold.
                    continue
                }
                // What the alert says is done waits while the lane holds its operations (recovery
                // compares the positions first, and keeps holding a symbol whose net differs from
                // the broker's): said, so no one takes it as sent.
                // (Not for an entry's or scale-in's refusal that leaves nothing to send: it tells of
                // a refusal, not of work.)
                if operationsHeld, alert.role?.isProtective ?? true || machine.hasOperationReady {
                    alert.message += " (held while recovery compares \(symbol)'s position with the broker's; if they differ, until releaseHeldOperations(of:))"
                }
                context.raise(alert)
            }
        }
    }

    /// Records one reaction: from a fill queued at `fillTime` (nanoseconds since `epoch`) to a
    /// protective operation handed to the broker at `now`.
    private func recordReaction(from fillTime: Int64, at now: Int64) {
        let reaction = Duration.nanoseconds(now - fillTime)
        if context.metrics.enabled { context.metrics.reaction.recordNanoseconds(reaction.nanoseconds) }
        context.configuration.reactionObserver?(reaction)
    }

    /// Sends every operation the machine has ready, as far as the breaker and rate limit allow.
    /// The fill path never waits: each operation runs in its own task and reports back here.
    private func dispatchOperations(machine: inout SymbolStateMachine) {
        // After shutdown, or once the journal failed, nothing goes out (a wake-up's pass may
        // still come): no operation is taken from the machine, no probe from the breaker, no new
        // wake-up planned.
        if context.lifecycle.load(ordering: .relaxed) == .stopped || halted != nil {
            if halted != nil { context.breaker.offerFreeProbe() }
            return
        }
        while true {
            // The clock is read once per operation, and only when something uses it (an open
            // breaker, a rate limit, metrics, a journal): not on every send of a plain setup.
            var clock = LazyInstant()
            // With a rate limit, a token is not taken (and given back) when nothing is ready to
            // send: meanwhile another symbol could find the bucket empty and wait for nothing.
            if context.bucket != nil, !machine.hasOperationReady {
                // This lane may have given the probe back to take it again later (its bucket was
                // empty); with nothing to send now, the lanes held behind it are told it is free.
                context.breaker.offerFreeProbe()
                return
            }
            // The period is read before asking: a request is never put in a later period than
            // the one it was let through in (then its failure would count against a breaker
            // that opened after it was sent).
            let period = context.breaker.period
            let isProbe: Bool
            if context.breaker.grantsAtOnce {
                // A closed breaker grants, as `acquire` would (without building its answer, whose
                // instant makes every copy of it go through value witnesses).
                isProbe = false
            } else {
                let permission = context.breaker.acquire(now: clock.now, wakingOnClose: self)
                if case .denied(let until) = permission {
                    noteHeldByBreaker(machine: &machine, now: clock.now)
                    if !machine.isQuiescent { scheduleWake(at: until) }
                    return
                }
                if case .probe = permission { isProbe = true } else { isProbe = false }
            }
            // An entry held back too long does not go now either (as the probe, or once the
            // breaker closed).
            if !openingsHeldSince.isEmpty { refuseOverdueOpenings(machine: &machine, now: clock.now, clockingNew: false) }
            // Let through with the breaker closed: a hold is over (a later one is alerted again).
            // A probe is not: the lane's other work is still held.
            if !isProbe, heldByBreaker != nil { heldByBreaker = nil }
            // A probe is handed out under the breaker's lock in the current period, which only its
            // own outcome can end: read now (an earlier read could be from before the breaker
            // opened, and the probe's outcome would then be taken for a stale one's).
            let ticket = BreakerTicket(period: isProbe ? context.breaker.period : period, isProbe: isProbe)
            // The breaker went half open to let this probe through: shown now, not at its answer.
            if isProbe, context.metrics.enabled { context.metrics.breakerState.record(CircuitBreaker.State.halfOpen.rawValue) }
            if let bucket = context.bucket, let wait = bucket.take(now: clock.now) {
                // This lane takes the probe again once the bucket has a token.
                if isProbe { context.breaker.releaseProbe(tellingHeld: false) }
                if !machine.isQuiescent { scheduleWake(at: clock.now + wait) }
                return
            }
            guard let operation = machine.nextOperation() else {
                if isProbe { context.breaker.releaseProbe() }
                context.bucket?.refund()
                return
            }
            // Sent: an entry's wait is over.
            if !openingsHeldSince.isEmpty { openingsHeldSince[operation.orderID] = nil }
            // The first operation of the stop (or target) after fills reacts to them.
            var fillTime: Int64 = 0
            if operation.role == .stopLoss {
                swap(&fillTime, &reactionPendingSince.stop)
            } else if operation.role == .takeProfit {
                swap(&fillTime, &reactionPendingSince.target)
            }
            let reactsToAFill = fillTime != 0
            let now: Int64 = context.metrics.enabled || (reactsToAFill && context.journal == nil) ? clock.nanoseconds : 0
            if context.journal != nil {
                // Sent once its intent is durable (next pass); its reaction is taken then.
                pendingRecords.append(JournalRecord(symbol: symbol, sequence: position.nextIntent(), kind: .intent,
                                                    payload: JournalCodec.encode(operation)))
                pendingSends.append(PendingSend(operation: operation, ticket: ticket, reactionFrom: reactsToAFill ? fillTime : 0))
            } else {
                if reactsToAFill { recordReaction(from: fillTime, at: now) }
                send(operation, ticket: ticket, sentAt: now)
            }
            if isProbe { return }
        }
    }

    /// The circuit breaker held this lane's work back: once it has for as long as an order's own
    /// unsent tries take to be alerted (`heldLimit`: `maxAttempts` times the breaker's open time),
    /// every order with work waiting is alerted as `operationHeld`, once per hold. Without this,
    /// only the orders whose requests the breaker's probes carried would be told. An entry's or
    /// scale-in's submit is refused instead, once it has itself waited that long (`refuseOverdueOpenings`).
    private func noteHeldByBreaker(machine: inout SymbolStateMachine, now: ContinuousClock.Instant) {
        refuseOverdueOpenings(machine: &machine, now: now, clockingNew: true)
        let closings = context.breaker.closings
        guard let held = heldByBreaker, held.closings == closings else {
            // The first denial, or the first since the breaker closed (a lane left with nothing
            // to send may not have been told): a hold begins.
            heldByBreaker = HeldByBreaker(since: now, closings: closings)
            return
        }
        let waited = now - held.since
        guard waited >= heldLimit else { return }
        let alerts = machine.heldWorkAlerts(excluding: held.alerted) {
            "held back by the circuit breaker for \(Self.seconds(waited)) (the broker keeps failing, or cannot be reached)"
        }
        for alert in alerts {
            if let orderID = alert.orderID { held.alerted.insert(orderID) }
            context.raise(alert)
        }
    }

    /// How long the circuit breaker may hold work back before it is alerted as held, or refused
    /// if it is an entry's or scale-in's submit: as many of its holds as the core's own count of
    /// unsent tries (`maxAttempts`, at most 255) before its alert, a hold being its open time or
    /// its probe wait (while a probe is out), whichever is longer.
    private var heldLimit: Duration {
        let breaker = context.configuration.circuitBreaker
        return max(breaker.openDuration, breaker.probeWait) * min(context.configuration.retry.maxAttempts, Int(UInt8.max))
    }

    /// "1.250 s".
    private static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = String(attoseconds / 1_000_000_000_000_000)
        return "\(seconds).\(String(repeating: "0", count: 3 - milliseconds.count))\(milliseconds) s"
    }

    /// Refuses each entry's and scale-in's submit that the circuit breaker has held back for
    /// `heldLimit` or more: each timed from the first denial that found it waiting (so that a
    /// bracket opened late in a long outage gets its own time) until it is sent or ends, across
    /// the breaker's closings and reopenings, a retry's backoff included. Sent later, it would add
    /// exposure at another market. Run at every denial (`clockingNew`: which starts the clocks of
    /// openings found waiting), and before anything is let through while a clock runs.
    private func refuseOverdueOpenings(machine: inout SymbolStateMachine, now: ContinuousClock.Instant, clockingNew: Bool) {
        let waiting = machine.waitingOpeningSubmits
        var since: [OrderID: ContinuousClock.Instant] = [:]
        for id in waiting {
            if let start = openingsHeldSince[id] { since[id] = start } else if clockingNew { since[id] = now }
        }
        openingsHeldSince = since
        let limit = heldLimit
        for id in waiting {
            guard let start = since[id], now - start >= limit else { continue }
            openingsHeldSince[id] = nil
            refuseOpenings(machine: &machine, of: id,
                           "not sent: held back by the circuit breaker for \(Self.seconds(now - start)) (the broker keeps failing, or cannot be reached); an entry or scale-in is not sent that late")
        }
    }

    /// Refuses every entry and scale-in submit waiting to be sent (or order `id`'s only): the
    /// circuit breaker has held it back too long (`refuseOverdueOpenings`), or it was not sent
    /// before a restart. Not sent, each is answered refused (`because`), through the journal like
    /// a broker's answer (its intent first), so the core ends it as it ends a submit the broker
    /// refuses (`entryRejected` for an entry, `operationFailed` for a scale-in). Sent later it
    /// would add exposure at another market; a resend whose earlier try may have placed the order
    /// cancels it instead.
    private func refuseOpenings(machine: inout SymbolStateMachine, of id: OrderID? = nil, _ because: String) {
        while let operation = machine.nextOpeningSubmit(of: id) {
            if context.journal != nil {
                pendingRecords.append(JournalRecord(symbol: symbol, sequence: position.nextIntent(), kind: .intent,
                                                    payload: JournalCodec.encode(operation)))
            }
            context.logger.warning("\(operation.kind.rawValue) refused: \(because)", metadata: ["symbol": "\(symbol)", "operation": "\(operation)"])
            // No breaker ticket: the broker was not asked, so nothing is learnt of its health.
            enqueue(.completed(operation, .failure(BrokerError(.permanent, because)), breaker: nil))
        }
    }

    /// Hands one operation to the broker. A `CallbackBroker` takes it with a completion
    /// callback (no task). Otherwise the call starts at once, on this thread (`Task.immediate`),
    /// and runs until it first suspends: a broker that answers without waiting completes here
    /// (its outcome is queued as the lane's next event) with no task switch; one that waits for
    /// the network suspends and resumes elsewhere, as a task would. Either way the lane does not
    /// wait for it. (Before macOS 26, where `Task.immediate` is missing, a plain task.)
    /// `sentAt` (nanoseconds since `epoch`) feeds the broker-latency metric only (read only with
    /// metrics enabled).
    private func send(_ operation: OrderOperation, ticket: BreakerTicket, sentAt: Int64) {
        if context.lifecycle.load(ordering: .relaxed) == .stopped {
            context.logger.notice("operation not sent: the manager was shut down: \(operation)", metadata: ["symbol": "\(symbol)"])
            if ticket.isProbe { context.breaker.releaseProbe() }
            return
        }
        if context.metrics.enabled { context.metrics.operations[operation.kind]?.increment() }
        context.counters.operationSent(operation.kind)
        context.work.begin()
        let latency = context.metrics.enabled ? context.metrics.brokerLatency[operation.kind] : nil
        // One object per send holds what the answer needs and takes only the first answer (the
        // closure captures it alone, so it costs no more than the closure's own context).
        let answer = OperationAnswer(lane: self, operation: operation, ticket: ticket, sentAt: sentAt, latency: latency)
        // Watched for its deadline only if it was not answered by the time the call returned
        // (a broker that needs no wait answers at once, and costs nothing here).
        defer {
            if context.answerWatchdog != nil, !answer.isSettled { watch(answer) }
        }
        if let broker = context.callbackBroker {
            // Only this thread ever stores its own id here, and it clears it before leaving, so
            // another thread never reads its own id: a relaxed load is enough.
            let answersInline = context.journal == nil
            if answersInline { sendingThread.store(ThreadIdentity.current, ordering: .relaxed) }
            broker.send(operation.request) { answer.take($0) }
            if answersInline { sendingThread.store(0, ordering: .relaxed) }
            return
        }
        let broker = context.broker
        let body: @Sendable () async -> Void = {
            let result: Result<Void, BrokerError>
            do throws(BrokerError) {
                switch answer.operation.request {
                case .submit(let request): try await broker.submit(request)
                case .modify(let request): try await broker.modify(request)
                case .cancel(let request): try await broker.cancel(request)
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            answer.take(result)
        }
        if #available(macOS 26.0, *) {
            Task.immediate { await body() }
        } else {
            Task { await body() }
        }
    }

    /// A broker's answer to one operation: queued as the lane's next event, or taken inline when
    /// a `CallbackBroker` gives it on the sending thread. A broker that answers again breaks its
    /// contract; the repeat is logged and ignored, so the work count stays balanced.
    /// The unit of work `send` began for the call is handed on to the answer's event (no end and
    /// begin of the shared count per answer: two contended atomic updates saved per operation).
    fileprivate func takeAnswer(_ result: Result<Void, BrokerError>, to operation: OrderOperation, ticket: BreakerTicket) {
        if sendingThread.load(ordering: .relaxed) == ThreadIdentity.current {
            takeAnswerInline(.completed(operation, result, breaker: ticket))
        } else {
            enqueue(.completed(operation, result, breaker: ticket), workBegun: true)
        }
    }

    fileprivate func ignoreRepeatedAnswer(to operation: OrderOperation) {
        context.logger.error("broker answered an operation twice; the repeat is ignored",
                             metadata: ["symbol": "\(symbol)", "operation": "\(operation)"])
    }

    fileprivate func ignoreLateAnswer(to operation: OrderOperation, _ result: Result<Void, BrokerError>) {
        context.logger.warning("broker answered after the answer timeout, when the call already counted as timed out; the answer is ignored",
                               metadata: ["symbol": "\(symbol)", "operation": "\(operation)", "answer": "\(result)"])
    }

    /// Watches a call for its answer deadline. No clock is read per call: while the lane has
    /// calls to watch, the runtime's watchdog ticks every half timeout and has it check them, and
    /// a call still unanswered three ticks after it was sent (between one and one and a half
    /// timeouts) has expired. Answered calls are dropped as the list grows (amortised).
    private func watch(_ answer: OperationAnswer) {
        let watch: AnswerWatch
        if let existing = answerWatch {
            watch = existing
        } else {
            watch = AnswerWatch()
            answerWatch = watch
            context.answerWatchdog?.enroll(self)
        }
        if watch.calls.count >= watch.compactAt {
            watch.calls.removeAll { $0.answer.isSettled }
            watch.compactAt = max(AnswerWatch.initialCompactAt, 2 * watch.calls.count)
        }
        watch.calls.append(AnswerWatch.Call(answer: answer, sentAtTick: context.answerWatchdog?.tickCount ?? 0))
    }

    /// Counts every call unanswered past its deadline as timed out (its answer, if it ever
    /// comes, is ignored); checks again while calls are unanswered. After a shutdown every call
    /// still watched is given up at once (nothing more is applied anyway).
    private func checkAnswers() {
        guard let watch = answerWatch, let timeout = context.configuration.brokerAnswerTimeout else { return }
        let stopped = context.lifecycle.load(ordering: .relaxed) == .stopped
        let tick = context.answerWatchdog?.tickCount ?? 0
        watch.calls.removeAll { call in
            if call.answer.isSettled { return true }
            if stopped {
                _ = call.answer.expire(after: timeout)
                return true
            }
            guard tick >= call.sentAtTick + 3 else { return false }
            if call.answer.expire(after: timeout) {
                context.logger.error("broker call unanswered after \(timeout): counted as timed out",
                                     metadata: ["symbol": "\(symbol)", "operation": "\(call.answer.operation)"])
            }
            return true
        }
        if watch.calls.isEmpty {
            answerWatch = nil
            context.answerWatchdog?.leave(self)
        }
    }

    /// A broker's answer given on the drainer's own thread, inside `send`: queued behind the
    /// events this pass has taken (the lane is running, so it needs no wake-up). Events still in
    /// the mailbox come after it, as if the answer had arrived just before them, which a broker's
    /// answer racing a fill may always do. It counts as the unit of work its call began.
    private func takeAnswerInline(_ event: consuming Event) {
        pending.append(Envelope(event: event, enqueuedAt: context.timed ? Self.nanosecondsNow : 0))
    }

    private func scheduleWake(at instant: ContinuousClock.Instant) {
        // One coming no later does; a shorter wait (the rate limit's, after the breaker's) needs its own.
        let nanos = max(1, (instant - Self.epoch).nanoseconds)
        guard wakeAt == 0 || nanos < wakeAt else { return }
        wakeAt = nanos
        // The later wake-up this one replaces is not needed.
        wakeTimer?.cancel()
        wakeTimer = schedule(at: instant, .gateOpened)
    }

    private func schedule(after delay: Duration, _ event: Event) {
        if delay <= .zero {
            enqueue(event)
        } else {
            schedule(at: ContinuousClock.now + delay, event)
        }
    }

    /// Enqueues `event` at `instant`; cancelling the task drops the event (only wake-ups are).
    @discardableResult
    private func schedule(at instant: ContinuousClock.Instant, _ event: Event) -> Task<Void, Never> {
        context.work.begin()
        return Task {
            defer { self.context.work.end() }
            do {
                try await Task.sleep(until: instant, clock: .continuous)
            } catch {
                return
            }
            self.enqueue(event)
        }
    }
}

extension SymbolLane.Event {
    /// Taken after a shutdown as before: a read of the state, the lane's own bookkeeping, and the
    /// shutdown's own snapshot.
    var isAnsweredAfterShutdown: Bool {
        switch self {
        case .read, .gateOpened, .reconciled, .checkAnswers, .snapshotNow: return true
        default: return false
        }
    }

    /// A read of the state.
    var isRead: Bool {
        if case .read = self { return true }
        return false
    }

    /// What the journal records for this event; nil for events that change no state.
    var journalInput: JournalInput? {
        switch self {
        case .open(let spec, _): return .open(spec)
        case .broker(.execution(let report)): return .execution(report)
        case .broker(.orderStatus(let report)): return .orderStatus(report)
        case .broker(.refused), .broker(.correction): return nil
        case .completed(let operation, let result, _):
            switch result {
            case .success: return .completed(operation, failure: nil)
            case .failure(let error): return .completed(operation, failure: error.operationFailure)
            }
        case .retryDue(let id): return .retryDue(id)
        case .rearm(let id): return .rearm(id)
        case .brokerQuantity(let id, let quantity): return .brokerQuantity(id, quantity)
        case .adopt(let id, let side, let type, let quantity): return .adopt(id, side, type, quantity: quantity)
        case .gateOpened, .checkAnswers, .checkFillsReported, .reconciled, .refuseUnsentEntries, .snapshotNow, .read: return nil
        }
    }
}

extension Result where Failure == BrokerError {
    fileprivate var brokerErrorKind: BrokerError.Kind? {
        if case .failure(let error) = self { return error.kind }
        return nil
    }
}

/// A clock reading taken on first use and then kept: one read per decision, none when unused.
/// Kept as nanoseconds since `SymbolLane.epoch`, not as an optional instant: that type is
/// resilient, and making and dropping one per operation went through value witnesses.
struct LazyInstant {
    private var reading: Int64 = 0

    /// The first read, in nanoseconds since `SymbolLane.epoch`.
    var nanoseconds: Int64 {
        mutating get {
            if reading == 0 { reading = max(1, SymbolLane.nanosecondsNow) }
            return reading
        }
    }

    /// The instant of the first read.
    var now: ContinuousClock.Instant {
        mutating get { SymbolLane.epoch + .nanoseconds(nanoseconds) }
    }
}

extension Duration {
    /// Whole nanoseconds, for metrics.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// The answer to one operation sent to the broker: the first answer reaches the lane, any later
/// one is ignored (the protocol asks for exactly one). Past `brokerAnswerTimeout` the call is
/// settled as timed out instead, and its answer ignored when it comes.
private final class OperationAnswer: Sendable {
    private static let waiting: UInt8 = 0
    private static let answered: UInt8 = 1
    private static let expired: UInt8 = 2

    private let lane: SymbolLane
    let operation: OrderOperation
    private let ticket: SymbolLane.BreakerTicket
    /// Nanoseconds since `SymbolLane.epoch` (an integer: an instant, a resilient type, would give
    /// this class a layout computed at run time and every send a metadata look-up).
    private let sentAt: Int64
    private let latency: Timer?
    private let state = Atomic<UInt8>(OperationAnswer.waiting)

    init(lane: SymbolLane, operation: OrderOperation, ticket: SymbolLane.BreakerTicket, sentAt: Int64, latency: Timer?) {
        self.lane = lane
        self.operation = operation
        self.ticket = ticket
        self.sentAt = sentAt
        self.latency = latency
    }

    /// True once answered or expired.
    var isSettled: Bool { state.load(ordering: .relaxed) != Self.waiting }

    /// The broker's answer.
    func take(_ result: Result<Void, BrokerError>) {
        let (taken, before) = state.compareExchange(expected: Self.waiting, desired: Self.answered, ordering: .acquiringAndReleasing)
        guard taken else {
            if before == Self.expired {
                lane.ignoreLateAnswer(to: operation, result)
            } else {
                lane.ignoreRepeatedAnswer(to: operation)
            }
            return
        }
        latency?.recordNanoseconds(SymbolLane.nanosecondsNow - sentAt)
        lane.takeAnswer(result, to: operation, ticket: ticket)
    }

    /// Stops waiting: the call counts as timed out. False when it was answered first.
    func expire(after timeout: Duration) -> Bool {
        guard state.compareExchange(expected: Self.waiting, desired: Self.expired, ordering: .acquiringAndReleasing).exchanged else { return false }
        lane.takeAnswer(.failure(BrokerError(.timedOut, "no answer within \(timeout)")), to: operation, ticket: ticket)
        return true
    }
}

/// A lane's calls watched for their answer deadline, oldest first. It exists while calls are
/// watched, and one check is scheduled at a time for as long as it does.
private final class AnswerWatch {
    struct Call {
        let answer: OperationAnswer
        /// The watchdog's tick count when the call was sent.
        let sentAtTick: Int
    }

    static let initialCompactAt = 4
    // Touched only by the lane's current drainer, like the lane's own state: no dynamic
    // exclusivity checks.
    @exclusivity(unchecked) var calls: [Call] = []
    /// The list is cleared of answered calls when it reaches this size.
    @exclusivity(unchecked) var compactAt = AnswerWatch.initialCompactAt
}

extension SymbolLane: CircuitBreakerWaiter {
    /// The breaker closed: the lane sends what it held now, not when it was told to ask again.
    func breakerClosed() { enqueue(.gateOpened) }
}
