"""``caaspp protect``: encryption, passwords and verification, one module per job.

What a protected report is
--------------------------
A copy of the report encrypted with the PDF 2.0 security handler (V=5, R=6: AES-256 for
streams and strings), opened by the student's password (the *user* password), with a
different random *owner* password that is thrown away at once, and permissions that allow
printing (and reading aloud, and copying text) and deny every kind of change.

How it is made: one key derivation per student
----------------------------------------------
The costly part of R=6 is the password hashing (algorithm 2.B of ISO 32000-2): qpdf
computes four such hashes to write a file and up to five to open one. None of them depends
on the document: the /Encrypt values (/U /UE /O /OE /Perms) and the random file key they
wrap can serve every report of a student. So, once per student, qpdf makes a security
handler for the student's password (it encrypts an empty document), and then writes each
of the student's reports with qpdf's own *copy encryption* (``--copy-encryption`` with
``--password-is-hex-key``): the report is written by qpdf, encrypted by qpdf with that file
key under those /Encrypt values, with no password hashing at all. The copy is made from a
small *carrier* PDF that holds the student's /Encrypt dictionary and the report's own
first /ID, so every report keeps its permanent identifier. Each stream and string is still
encrypted with a fresh random IV; sharing a file key between the files of one password
reveals nothing that the password does not already unlock.

How it is verified: our own algorithm 2.B
-----------------------------------------
Re-opening each file with qpdf and its password would cost more than writing it (five
hashes). Instead, for every file written, caaspp reads its /Encrypt dictionary in place
(it is never encrypted and never in an object stream) and checks it with an
implementation of its own of ISO 32000-2 algorithms 2.A and 2.B (hashlib and the
``cryptography`` package):

- the student's password validates against /U, and the empty password validates neither
  against /U nor against /O: a reader cannot open the file without the password;
- /UE, unwrapped with the student's password, gives the file key; /Perms decrypted with
  that key reads ``adb`` and the permissions written in /P, which allow printing and deny
  modification;
- qpdf, given that key (and no password), parses the file and reads the same /Encrypt
  dictionary; the bytes of a content stream, taken from the file at the offset its
  cross-reference table gives, decrypt (AES-256-CBC, the IV in the first 16 bytes) with
  that key, and inflate to the content of the input report's first page.

So the password opens the file, and nothing else does. The hashes depend only on the
password and the /Encrypt values, so their results are kept for the student's next files
(a file whose values differ is checked afresh). qpdf made the handler and our code checks
it: two independent implementations have to agree.

Files and the password sheet
----------------------------
Each output is written to a temp file beside its final name (0600), fsynced and verified
by a worker process; the parent then appends the student's row to the password sheet,
fsyncs it, and only then renames the file into place (and fsyncs its folder). Ctrl-C lets
the running workers finish and removes their temp files; kill -9 can leave temp files
(``.caaspp-*.part``) and sheet rows for files not yet there, but never a protected file
whose password is not in the sheet, and never a partial file under a final name. A re-run
removes those temp files, protects what is missing with the passwords in the sheet, and
leaves alone every copy that still verifies.

Modules
-------
``policy`` (permissions, password rules), ``passwords`` (generated passwords),
``pdfsyntax`` (reading /Encrypt in place), ``pdfcrypt`` (algorithms 2.A and 2.B),
``handler`` (security handlers, writing a report), ``verify`` (what a protected report
is, checked), ``inputs`` (the reports to protect), ``plan`` (whose password each gets),
``worker`` (the work of one password, the process pool), ``results`` (outcomes), and
``run`` (:func:`~caaspp_cli.protect.run.protect_reports`, the whole run).
"""
