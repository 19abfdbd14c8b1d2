"""``caaspp protect``: encryption, passwords and verification, one module per job.

What a protected report is
--------------------------
A copy of the report encrypted with the PDF 2.0 security handler (V=5, R=6: AES-256 for
streams and strings), opened by the student's password (the *user* password), with a
different random *owner* password that is thrown away at once, and permissions that allow
printing (and reading aloud, and copying text) and deny every kind of change.

How it is made: five hashes per student, none per file
------------------------------------------------------
The costly part of R=6 is the password hashing (algorithm 2.B of ISO 32000-2, about 1 ms
in Python with OpenSSL's AES, several in the qpdf that pikepdf bundles): writing a file
the usual way costs four hashes, opening it with a password three. None of them depends
on the document: the /Encrypt values (/U /UE /O /OE /Perms) and the random file key they
wrap can serve every report of a student. So, once per student, caaspp computes those
values itself (algorithms 8, 9 and 10: two hashes of the student's password for /U and
/UE, two of a random owner password, thrown away at once, for /O and /OE), and then writes
each of the student's reports with qpdf's own *copy encryption* (``--copy-encryption``
with ``--password-is-hex-key``): the report is written by qpdf, encrypted by qpdf with that
file key under those /Encrypt values, with no password hashing at all. The copy is made
from a small *carrier* PDF that holds the student's /Encrypt dictionary and the report's
own first /ID, so every report keeps its permanent identifier. Each stream and string is
still encrypted with a fresh random IV; sharing a file key between the files of one
password reveals nothing that the password does not already unlock.

Before a process makes its first handler, qpdf vouches for our algorithms: it must open a
carrier our code wrote with its user password and with its owner password, find our file
key and our /P both ways, and refuse it without a password.

How it is verified: from the file, by code that did not write it
----------------------------------------------------------------
Re-opening each file with qpdf and its password would cost three more hashes. Instead,
for every file written, caaspp reads its /Encrypt dictionary in place from the file's
bytes (it is never encrypted and never in an object stream) and checks it with algorithm
2.A (hashlib and the ``cryptography`` package):

- the student's password validates against /U (so the empty password cannot: that would
  be a SHA-2 collision), and the empty password does not validate against /O: a reader
  cannot open the file without the password;
- /UE, unwrapped with the student's password, gives the file key; /Perms decrypted with
  that key reads ``adb`` and the permissions written in /P, which allow printing and deny
  modification;
- qpdf, given that key (and no password), parses the file and reads the same /Encrypt
  dictionary; the bytes of a content stream, taken from the file at the offset its
  cross-reference table gives, decrypt (AES-256-CBC, the IV in the first 16 bytes) with
  that key, and inflate to the content of the input report's first page.

So the password opens the file, and nothing else does. The check takes the salts and
hashes from the file and the password from the plan, and asks algorithm 2.B afresh; 2.B
is a pure function, so when it asks exactly what the writer asked a moment before (the
student's password with the salts of /U), the result is remembered rather than computed
twice. Only the owner check costs a hash of its own. Its results depend only on the
password and the /Encrypt values, so they are kept for the student's next files (a file
whose values differ is checked afresh).

Files and the password sheet
----------------------------
Each output is written to a temp file beside its final name (0600), fsynced and verified
by a worker process; the parent then appends the student's row to the password sheet,
fsyncs it, and only then renames the file into place (and fsyncs its folder). A worker is
sent the files of several students at once (up to 16 files), and the parent records them
at once: one sheet append and one folder fsync per batch. Ctrl-C lets
the running workers finish and removes their temp files; kill -9 can leave temp files
(``.caaspp-*.part``) and sheet rows for files not yet there, but never a protected file
whose password is not in the sheet, and never a partial file under a final name. A re-run
removes those temp files, protects what is missing with the passwords in the sheet, and
leaves alone every copy that still verifies.

Modules
-------
``policy`` (permissions, password rules), ``passwords`` (generated passwords),
``pdfsyntax`` (reading /Encrypt in place), ``pdfcrypt`` (algorithms 2.A, 2.B, 8 to 10),
``handler`` (security handlers, writing a report), ``verify`` (what a protected report
is, checked), ``inputs`` (the reports to protect), ``plan`` (whose password each gets),
``worker`` (the work of one password, batches, the process pool), ``results`` (outcomes), and
``run`` (:func:`~caaspp_cli.protect.run.protect_reports`, the whole run).
"""
