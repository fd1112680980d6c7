import IdlegateHTTP
import IdlegateIO

/// Closing: lingering close, deadlines, shutdown.
extension ClientConnection {
    func continueClosing() -> Bool {
        if state == .closing {
            let written = client.bytesWritten
            switch client.flush() {
            case .pending:
                if deadlineKind != .closing || client.bytesWritten != written { setDeadline(.closing, settings.timeouts.clientBody) }
                return false
            case .failed:
                closeNow()
                return false
            case .drained:
                client.transport.shutdownWrite()
                state = .lingering
                setDeadline(.closing, 2_000)
            }
        }
        // Lingering close: read and drop what the client still sends, up to a bound.
        while true {
            switch client.read(into: worker.scratch) {
            case .bytes(let n):
                lingerBytes += n
                if lingerBytes > 1 << 20 { closeNow(); return false }
            case .wouldBlock:
                return false
            case .eof, .failed:
                closeNow()
                return false
            }
        }
    }

    /// A deadline passed.
    func timedOut() {
        switch deadlineKind {
        case .idle, .closing, .tunnel:
            closeNow()
        case .header:
            worker.logger.info("request head from \(peerHost) not complete in time: 408")
            inbound.clear()
            client.write(ErrorResponse.bytes(408))
            state = .closing
            setDeadline(.closing, 1_000)
            drive()
        case .connect:
            if let x = exchange { upstreamFailed(x, status: 504, reason: "connect timed out") }
            drive()
        case .upstream:
            if let x = exchange {
                upstreamFailed(x, status: 504, reason: "no response in time")
            } else if state == .checkingSession {
                worker.logger.error("504: the shared session layer did not answer in time")
                client.write(ErrorResponse.bytes(504))
                state = .closing
            } else {
                closeNow()
            }
            drive()
        case .client:
            if let x = exchange, !x.responseStarted {
                worker.logger.info("client \(peerHost) stalled during the body of \(x.method) \(x.logPath): 408")
                x.upstream?.close()
                x.upstream = nil
                exchange = nil
                client.write(ErrorResponse.bytes(408))
                state = .closing
                setDeadline(.closing, 1_000)
                drive()
            } else {
                closeNow()
            }
        }
    }

    /// Shutdown: an idle connection closes now; a busy one closes after its current response.
    func drain() {
        closeAfterResponse = true
        if state == .awaitingRequest && deadlineKind == .idle && inbound.isEmpty && !client.hasQueuedOutput {
            closeNow()
        }
    }

    func closeNow() {
        guard state != .closed else { return }
        state = .closed
        if let up = exchange?.upstream { up.close() }
        exchange = nil
        inbound.clear()
        worker.loop.deregister(fd: client.fd)
        client.transport.close()
        worker.remove(self)
    }

    /// For a connection that never made it into the loop.
    func discard() {
        state = .closed
        client.transport.close()
    }
}
