//! `--print-man-page`: ringws(1) in roff, made from the clap definitions by `clap_mangen` (so
//! it cannot fall behind the flags), with the sections an installed service needs after them.

use clap::CommandFactory;

use super::Cli;

/// What the generated page lacks: where the package puts things, and what to read next.
const MORE: &str = r#".SH FILES
.TP
\fI/etc/ringws/ringws.toml\fR
The configuration the service reads (\fB\-\-config\fR): every option, commented out with its
help and default. Flags on the command line win over it.
.TP
\fI/usr/lib/systemd/system/ringws.service\fR
The service: user \fBringws\fR, hardened (no capabilities, read\-only system, no new
privileges), \fBLimitNOFILE\fR for 1,000,000 connections.
.TP
\fI/usr/lib/sysctl.d/90\-ringws.conf\fR
Kernel settings for 1,000,000 connections (file descriptors, accept queue, socket memory).
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop gracefully: every connection is closed with 1001 (going away), replies are waited for up
to \fB\-\-shutdown\-timeout\fR.
.TP
\fBSIGHUP\fR
Reload the TLS certificates (the old ones are kept if the new files are bad; new handshakes use
the new ones, open connections keep theirs). Without TLS it is logged and changes nothing.
.SH SEE ALSO
\fI/usr/share/doc/ringws/\fR (README and the tuning guide), \fBsystemctl\fR(1),
\fBjournalctl\fR(1), \fBsysctl.d\fR(5).
"#;

/// The manual page.
pub(crate) fn man_page() -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .section("1")
        .render(&mut out)
        .expect("rendering into memory cannot fail");
    out.extend_from_slice(MORE.as_bytes());
    out
}
