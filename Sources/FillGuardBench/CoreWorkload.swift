import FillGuard
import FillGuardCore

/// The rules alone, without the runtime: one `SymbolStateMachine`, scale-in fills booked one by
/// one, every operation sent and acknowledged synchronously (a zero-latency broker with no
/// tasks). Single-threaded, so valgrind can count its instructions.
public enum CoreWorkload {
    /// Books `fills` one-share scale-in fills on one open bracket and acknowledges the resizes.
    public static func run(fills: Int) -> Measurement {
        var machine = SymbolStateMachine(symbol: "CORE")
        var actions: [SymbolStateMachine.Action] = []
        actions.reserveCapacity(16)
        let spec = BenchUniverse.spec(0, scaleInShares: fills + 1)
        var machineSymbol = spec
        machineSymbol.symbol = "CORE"
        var operations = 0
        func drain() {
            while let operation = machine.nextOperation() {
                operations += 1
                machine.operationSucceeded(operation, emitting: &actions)
            }
            actions.removeAll(keepingCapacity: true)
        }
        do {
            try machine.open(machineSymbol, emitting: &actions)
            drain()
            guard let entry = machine.orderID(of: spec.positionID, role: .entry) else { preconditionFailure("no entry") }
            try machine.apply(ExecutionReport(executionID: "setup", orderID: entry, symbol: "CORE", side: .buy,
                                              lastQuantity: Quantity(BenchUniverse.baseShares), lastPrice: BenchUniverse.fillPrice),
                              emitting: &actions)
            drain()
        } catch {
            preconditionFailure("core setup failed: \(error)")
        }
        guard let scaleIn = machine.orderID(of: spec.positionID, role: .scaleIn(0)) else { preconditionFailure("no scale-in") }
        operations = 0
        let cpuStart = BenchClock.processCPU()
        let start = BenchClock.now()
        for index in 0..<fills {
            do {
                try machine.apply(ExecutionReport(executionID: ExecutionID(String(index, radix: 36)), orderID: scaleIn, symbol: "CORE",
                                                  side: .buy, lastQuantity: Quantity(1), lastPrice: BenchUniverse.fillPrice),
                                  emitting: &actions)
            } catch {
                preconditionFailure("core fill refused: \(error)")
            }
            drain()
        }
        let elapsed = BenchClock.now() - start
        let cpu = BenchClock.processCPU() - cpuStart
        return Measurement(
            workload: "core", implementation: "fillguard", parameters: ["fills": "\(fills)", "mix": "scalein"],
            metrics: ["fills": Double(fills), "fillsPerSecond": Double(fills) / FillGuardWorkloads.seconds(elapsed),
                      "cpuMicrosPerFill": Double(cpu) / 1_000 / Double(max(1, fills)),
                      "brokerCallsPerFill": Double(operations) / Double(max(1, fills))])
    }
}
