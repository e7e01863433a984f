import FillGuardCore

/// How a replay's scripted broker behaves.
public struct ReplayOptions: Sendable, Hashable {
    /// The scripted broker has native modify (default true).
    public var nativeModify = true
    /// Replacement without native modify.
    public var strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate
    /// Tries per operation before it fails for good.
    public var maxAttempts = 3
    /// How a position a late fill flipped against its bracket is covered.
    public var flippedPositionCover: FlippedPositionCover = .bracket

    /// Defaults: native modify, cancel-then-create fallback, 3 attempts, a flipped position
    /// covered by the bracket's two orders.
    public init(nativeModify: Bool = true, strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate, maxAttempts: Int = 3,
                flippedPositionCover: FlippedPositionCover = .bracket) {
        self.nativeModify = nativeModify
        self.strategy = strategy
        self.maxAttempts = maxAttempts
        self.flippedPositionCover = flippedPositionCover
    }
}

/// A line a replay refused, with why.
public struct RejectedLine: Sendable, Hashable {
    /// 1-based line number in the trace.
    public var line: Int
    /// The typed error.
    public var error: InputError
}

/// Replays a trace deterministically: the core state machines, driven line by line, against a
/// scripted broker that acknowledges at once unless a scripted fault says otherwise. Retries
/// happen in virtual time (immediately), so the result never depends on a clock.
public struct TraceReplayer: Sendable {
    /// A replay remembers every execution id of a symbol (a trace is finite): a repeat is a
    /// duplicate however many fills came between, where the runtime keeps a bounded window.
    static let executionWindow = Int(Int32.max)

    private struct PendingFault: Sendable {
        var script: BrokerFaultScript
        var remaining: Int
        /// The trace line that scripted it.
        var line: Int
        /// Its place among the faults, in the order they were given (which the line numbers a
        /// caller passes need not follow).
        var order: Int
    }

    /// Which operations a fault can meet: its kind, and its position (nil: any position).
    private struct FaultKey: Hashable, Sendable {
        var operation: OrderOperation.Kind
        var position: PositionID?
    }

    private let options: ReplayOptions
    private var machines: [Symbol: SymbolStateMachine] = [:]
    private var positionSymbols: [PositionID: Symbol] = [:]
    private var positionOrder: [PositionID] = []
    /// Scripted faults still to meet an operation, by what they can meet, each list in trace
    /// order (so that an operation finds its candidates without looking at every fault).
    private var faults: [FaultKey: [PendingFault]] = [:]
    private var faultsGiven = 0
    /// Lines refused so far.
    public private(set) var rejected: [RejectedLine] = []
    /// Broker operations sent so far, by kind (every attempt counts).
    public private(set) var operations: [OrderOperation.Kind: Int] = [:]
    /// Alerts raised so far.
    public private(set) var alerts: [Alert] = []
    /// Orders a report said had filled more than their reports booked, in the order said: a
    /// replay has no clock, so whether those fills came is checked at the end (`report()`).
    private var unreportedFillChecks: [OrderID] = []
    /// The order each applied execution id was booked to, per symbol: a line repeating an id
    /// for the same position and role names that order, even once a newer one has the role.
    private var bookedExecutions: [Symbol: [ExecutionID: OrderID]] = [:]
    /// Symbols whose broker work was cut off at `operationLimit` steps after a line, and why.
    public private(set) var unsettled: [String] = []
    /// The line being applied, to name it in an `unsettled` notice.
    private var currentLine = 0
    /// Fields of accepted lines that their type does not read, one line each (a misspelt name?).
    public private(set) var ignoredFields: [String] = []
    /// Broker steps (operations and retries) a line's work may take before it is cut off.
    public static let operationLimit = 100_000

    /// An empty replayer.
    public init(options: ReplayOptions = ReplayOptions()) {
        self.options = options
    }

    /// Replays a whole trace text and returns the final state.
    public static func replay(_ text: String, options: ReplayOptions = ReplayOptions()) -> ReplayReport {
        replay(bytes: Array(text.utf8), options: options)
    }

    /// Replays a trace file's bytes: lines end at "\n", "\r\n" or "\r"; a line that is not valid
    /// UTF-8 is refused as malformed, like any other bad line, and the replay goes on.
    public static func replay(bytes: [UInt8], options: ReplayOptions = ReplayOptions()) -> ReplayReport {
        var stream = TraceStream(options: options)
        stream.feed(bytes)
        return stream.finish()
    }

    /// Records line `line` as refused with `error` (a line the stream could not hand over).
    mutating func refuse(line: Int, _ error: InputError) {
        rejected.append(RejectedLine(line: line, error: error))
    }

    /// Applies one trace line (blank lines are skipped) and lets the broker work settle.
    public mutating func apply(_ text: String, lineNumber: Int) {
        let trimmed = text.trimmingCharacters(in: [" ", "\t", "\r"])
        guard !trimmed.isEmpty else { return }
        currentLine = lineNumber
        do throws(InputError) {
            var unknown: [String] = []
            let parsed = try TraceLine.parse(trimmed, unknownFields: &unknown)
            switch parsed {
            case .open(let spec): try open(spec)
            case .fill(let fill): try apply(fill)
            case .brokerFault(let script):
                faultsGiven += 1
                faults[FaultKey(operation: script.operation, position: script.position), default: []]
                    .append(PendingFault(script: script, remaining: script.count, line: lineNumber, order: faultsGiven))
            }
            for field in unknown { ignoredFields.append("line \(lineNumber): \(field); it was ignored") }
        } catch {
            rejected.append(RejectedLine(line: lineNumber, error: error))
        }
    }

    /// The final state: positions in the order opened, rejected lines, operation counts, invariants.
    public func report() -> ReplayReport {
        var positions: [PositionSnapshot] = []
        for id in positionOrder {
            if let symbol = positionSymbols[id], let snapshot = machines[symbol]?.snapshot(of: id) { positions.append(snapshot) }
        }
        var violations: [InvariantViolation] = []
        for symbol in machines.keys.sorted() {
            guard let machine = machines[symbol] else { continue }
            violations += machine.invariantViolations(atQuiescence: machine.isQuiescent)
        }
        // Scripted faults that never met their operation (a position or role the trace never
        // had, or fewer operations than the count): said, so that a trace's author sees it.
        let unused = faults.values.joined().sorted { $0.order < $1.order }.map { fault in
            let target = [fault.script.position.map { "position \($0)" }, fault.script.role.map { "role \($0)" }].compactMap { $0 }
            return "line \(fault.line): \(fault.remaining) of \(fault.script.count) scripted \(fault.script.operation.rawValue) \(fault.script.kind.rawValue) faults"
                + (target.isEmpty ? "" : " (\(target.joined(separator: ", ")))") + " never met an operation"
        }
        // Fills a report's cumulative quantity announced that never came by the trace's end.
        var alerts = alerts
        var checked: Set<OrderID> = []
        for id in unreportedFillChecks where checked.insert(id).inserted {
            guard let symbol = SymbolStateMachine.positionID(ofOrder: id).flatMap({ positionSymbols[$0] }),
                  let alert = machines[symbol]?.unreportedFillsAlert(for: id) else { continue }
            alerts.append(alert)
        }
        return ReplayReport(positions: positions, rejected: rejected, operations: operations, alerts: alerts, violations: violations,
                            unsettled: unsettled, unusedFaults: unused, ignoredFields: ignoredFields)
    }

    private mutating func open(_ spec: BracketSpec) throws(InputError) {
        try spec.validateNames()
        try spec.validateSides()
        guard positionSymbols[spec.positionID] == nil else {
            throw InputError(.positionExists, "position \(spec.positionID) already exists")
        }
        // Each machine is taken out of the table while it changes, so that its storage is not
        // shared with the table's copy: a change then copies nothing (it copied every execution
        // id so far, making a long trace of one symbol quadratic).
        // (Not even kept aside for a refusal: a second reference would make the change copy
        // everything. A refused open changes nothing, so the machine goes back as it is.)
        var taken = machines.removeValue(forKey: spec.symbol)
        let existed = taken != nil
        var machine = taken.take() ?? SymbolStateMachine(symbol: spec.symbol, configuration: SymbolStateMachine.Configuration(
            nativeModify: options.nativeModify, replaceStrategy: options.strategy, maxAttempts: options.maxAttempts,
            executionWindow: Self.executionWindow, flippedPositionCover: options.flippedPositionCover))
        var actions: [SymbolStateMachine.Action] = []
        do {
            try machine.open(spec, emitting: &actions)
        } catch {
            if existed { machines[spec.symbol] = machine }
            throw error
        }
        positionSymbols[spec.positionID] = spec.symbol
        positionOrder.append(spec.positionID)
        settle(&machine, actions)
        machines[spec.symbol] = machine
    }

    private mutating func apply(_ fill: TraceFill) throws(InputError) {
        guard let symbol = positionSymbols[fill.position], var machine = machines.removeValue(forKey: symbol) else {
            throw InputError(.unknownPosition, "position \(fill.position) is not open in this trace")
        }
        // A refused fill changes nothing in the machine, which goes back as it is.
        defer { machines[symbol] = machine }
        // A fill that gives its side names the role's order on that side (after a flip, an old
        // order the broker kept on the other side; without the side, the newest one).
        var orderID = machine.orderID(of: fill.position, role: fill.role, side: fill.side, quantity: fill.quantity)
            ?? machine.orderID(of: fill.position, role: fill.role, quantity: fill.quantity)
        // A repeat of a fill names the order it was booked to (then a repeat, not a fill its
        // role's newer order has not booked). The same id for another position or role is no
        // repeat: refused, and alerted, as the broker may have traded it.
        if let booked = bookedExecutions[symbol]?[fill.executionID], let original = machine.snapshot(of: booked) {
            guard original.positionID == fill.position, original.role == fill.role else {
                let error = InputError(.duplicateExecution, "execution \(fill.executionID) was already applied, to \(original.role) \(booked) of position \(original.positionID), "
                                       + "not to a fill of \(fill.role) of \(fill.position), so it is no repeat (the id reused?); refused")
                if let order = orderID.flatMap(machine.snapshot(of:)) {
                    alerts.append(SymbolStateMachine.fillRefusedAlert(fill.executionID, of: order, error))
                }
                throw error
            }
            orderID = booked
        }
        guard let orderID, let order = machine.snapshot(of: orderID) else {
            throw InputError(.unknownOrder, "position \(fill.position) has no \(fill.role) order")
        }
        let report = ExecutionReport(
            executionID: fill.executionID, orderID: orderID, symbol: fill.symbol ?? symbol, side: fill.side ?? order.side,
            lastQuantity: fill.quantity, lastPrice: fill.price, cumulativeQuantity: fill.cumulativeQuantity,
            leavesQuantity: fill.leavesQuantity, commission: fill.commission)
        var actions: [SymbolStateMachine.Action] = []
        do throws(InputError) {
            try machine.apply(report, emitting: &actions)
        } catch {
            // As the runtime does: a fill refused as impossible may still be a trade at the broker.
            if let alert = machine.alert(forRefused: report, error) { alerts.append(alert) }
            throw error
        }
        bookedExecutions[symbol, default: [:]][fill.executionID] = orderID
        settle(&machine, actions)
    }

    /// Runs the scripted broker until the symbol has no work left.
    private mutating func settle(_ machine: inout SymbolStateMachine, _ initial: [SymbolStateMachine.Action]) {
        let symbol = machine.symbol
        var retries: [OrderID] = []
        var actions = initial
        collect(&actions, into: &retries)
        var guardrail = 0
        while true {
            guardrail += 1
            guard guardrail <= Self.operationLimit else {
                // Faults that never run out (a huge count with as many attempts allowed): stop
                // and say so, rather than loop for ever or pass the state off as settled.
                unsettled.append("line \(currentLine): \(symbol): stopped after \(Self.operationLimit) broker steps with work left (scripted faults that never run out?)")
                break
            }
            if let operation = machine.nextOperation() {
                operations[operation.kind, default: 0] += 1
                if let failure = scriptedFailure(for: operation) {
                    machine.operationFailed(operation, failure, emitting: &actions)
                } else {
                    machine.operationSucceeded(operation, emitting: &actions)
                }
                collect(&actions, into: &retries)
            } else if !retries.isEmpty {
                for id in retries { machine.retryDue(id, emitting: &actions) }
                retries.removeAll()
                collect(&actions, into: &retries)
            } else {
                break
            }
        }
    }

    private mutating func collect(_ actions: inout [SymbolStateMachine.Action], into retries: inout [OrderID]) {
        for action in actions {
            switch action {
            case .scheduleRetry(let id, _): retries.append(id)
            case .alert(let alert): alerts.append(alert)
            case .positionChanged, .orderChanged: break
            case .scheduleRearm: break // a replay has no cool-down: a permanent fault stays failed (and alerted)
            case .checkFillsReported(let id): unreportedFillChecks.append(id)
            }
        }
        actions.removeAll(keepingCapacity: true)
    }

    /// The failure of the first fault in trace order that meets `operation` (its kind, its
    /// position or any, its role or any), counted down; nil when none does.
    private mutating func scriptedFailure(for operation: OrderOperation) -> OperationFailure? {
        var first: (key: FaultKey, index: Int, order: Int)?
        for key in [FaultKey(operation: operation.kind, position: operation.positionID), FaultKey(operation: operation.kind, position: nil)] {
            guard let candidates = faults[key],
                  let index = candidates.firstIndex(where: { $0.script.role == nil || $0.script.role == operation.role }) else { continue }
            if first.map({ candidates[index].order < $0.order }) ?? true { first = (key, index, candidates[index].order) }
        }
        guard let (key, index, _) = first, var candidates = faults.removeValue(forKey: key) else { return nil }
        candidates[index].remaining -= 1
        let script = candidates[index].script
        if candidates[index].remaining <= 0 { candidates.remove(at: index) }
        if !candidates.isEmpty { faults[key] = candidates }
        return BrokerError(script.kind, "scripted \(script.kind.rawValue) fault").operationFailure
    }
}
