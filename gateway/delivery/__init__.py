"""The delivery engine: messages from the spool to the next hop, with their destination's TLS mode.

In parts, as Postfix splits its queue manager and SMTP client: ``engine`` (the queue), ``attempt``
(one message, domain by domain), ``hops`` (routes, MX, addresses), ``pool`` (connection limits and
reuse), ``client`` (one SMTP connection and its TLS), ``notices`` (bounces and alerts).

It runs in the gateway process, beside the listeners. Each message's recipients
are grouped by domain; a domain's hosts come from SMTP Routes, else its MX
records (then its A/AAAA), and are tried in order. Each connection follows the
TLS Support of the domain's Destination Controls entry, as the guide defines it:

  None              no STARTTLS;
  Preferred         STARTTLS if offered; not offered, or refused before ``220``:
                    on in clear; a failure after ``220`` ends the connection
                    (never clear there) and the message waits for a retry;
  Required          no TLS, nothing sent: the message waits for a retry;
  Preferred-Verify  as Preferred, and the certificate is verified; encrypted
                    either way, the log says whether it verified;
  Required-Verify   only over TLS with a certificate that verifies
                    (``certificates.verify``) for the domain or the host name.

Connections are limited per Destination Controls entry (Concurrent Connections, for
the whole domain or per MX address) and system-wide (``<delivery>``: all connections,
and those that may use TLS). A connection stays open for ``IDLE_SECONDS`` and takes
the domain's next messages under the same TLS mode, up to Maximum Messages Per
Connection; Recipients per Minute holds a domain's messages once its budget is spent.
"""
