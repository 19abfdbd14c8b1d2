"""The sentences of a message that depend on the family, in each report language.

The templates are fixed text; what changes with the family is said here, per language:
the greeting (the guardian's name when the roster has it, else a neutral one naming the
student) and every phrase whose grammar follows the number of attached reports (one
report, or several: "Attached is ... Report" / "Attached are ... 2 ... Reports"; Arabic
also has a dual). They reach the templates as placeholders (``{greeting}``,
``{reports_title}``, ``{reports_attached}``, ``{reports_protected}``, ``{reports_open}``,
``{reports_sent}``), in the language of the template set chosen for the family, so that a
district's own templates can use them too. The report message of a family's later pair (a
report that came after the family was reached) says that another report is now available
(``later``: its title and attached sentence); a language without those phrases says what
a first message says, in its own words, rather than mix in English.

The translations other than English need a reviewer who reads the language (see the
README, "Message languages").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Forms:
    """One phrase for one report, for several, and (Arabic) for exactly two."""

    one: str
    many: str
    two: str | None = None

    def pick(self, count: int) -> str:
        if count == 1:
            return self.one
        if count == 2 and self.two is not None:
            return self.two
        return self.many


@dataclass(frozen=True)
class Phrases:
    """Every family-dependent phrase of one language.

    Fields of the texts: ``{guardian}``, ``{name}`` (the student's), ``{first}``,
    ``{reports}`` (the list of tests and years), ``{count}``.
    """

    greeting_named: str
    greeting_neutral: str
    title: Forms
    attached: Forms
    protected: Forms
    open: Forms
    sent: Forms
    # A later pair's report message: its title and attached sentence (None: as a first).
    title_later: Forms | None = None
    attached_later: Forms | None = None


PHRASE_PLACEHOLDERS: Final[Mapping[str, str]] = {
    "greeting": "'Dear GUARDIAN,' if the roster has the guardian's name, else 'Dear parent "
    "or guardian of STUDENT,' (in the message's language)",
    "reports_title": "'Student Score Report', or '... Reports' for several ('New ...' when "
    "the family was sent reports before)",
    "reports_attached": "the sentence saying which report(s) are attached (that another is "
    "now available, when the family was sent reports before)",
    "reports_protected": "the sentence saying the PDF file(s) are password-protected",
    "reports_open": "the sentence telling how to open the attachment(s)",
    "reports_sent": "(password message) the sentence saying the report(s) came separately",
}

PHRASES: Final[Mapping[str, Phrases]] = {
    "en": Phrases(
        greeting_named="Dear {guardian},",
        greeting_neutral="Dear parent or guardian of {name},",
        title=Forms("Student Score Report", "Student Score Reports"),
        attached=Forms(
            "Attached is {first}'s Student Score Report from the California statewide "
            "assessments ({reports}).",
            "Attached are {first}'s {count} Student Score Reports from the California "
            "statewide assessments ({reports}).",
        ),
        protected=Forms(
            "The PDF file is protected with a password to keep your child's results private.",
            "The PDF files are protected with a password to keep your child's results private.",
        ),
        open=Forms(
            "Open the attachment and type the password when asked.",
            "Open each attachment and type the password when asked: the same password "
            "opens them all.",
        ),
        sent=Forms(
            "In a separate email we sent you {first}'s Student Score Report as a protected "
            "PDF file. To open it, use this password:",
            "In a separate email we sent you {first}'s {count} Student Score Reports as "
            "protected PDF files. To open them, use this password:",
        ),
        title_later=Forms("New Student Score Report", "New Student Score Reports"),
        attached_later=Forms(
            "Another of {first}'s Student Score Reports is now available: attached is the "
            "report from the California statewide assessments ({reports}).",
            "{count} more of {first}'s Student Score Reports are now available: attached "
            "are the reports from the California statewide assessments ({reports}).",
        ),
    ),
    "es": Phrases(
        greeting_named="Estimado/a {guardian}:",
        greeting_neutral="Estimada familia de {name}:",
        title=Forms(
            "Informe de Calificaciones del Estudiante", "Informes de Calificaciones del Estudiante"
        ),
        attached=Forms(
            "Adjunto encontrará el Informe de Calificaciones del Estudiante de {first} de "
            "las evaluaciones estatales de California ({reports}).",
            "Adjuntos encontrará los {count} Informes de Calificaciones del Estudiante de "
            "{first} de las evaluaciones estatales de California ({reports}).",
        ),
        protected=Forms(
            "El archivo PDF está protegido con una contraseña para mantener la privacidad "
            "de los resultados de su hijo o hija.",
            "Los archivos PDF están protegidos con una contraseña para mantener la "
            "privacidad de los resultados de su hijo o hija.",
        ),
        open=Forms(
            "Abra el archivo adjunto y escriba la contraseña cuando se le pida.",
            "Abra cada archivo adjunto y escriba la contraseña cuando se le pida: la misma "
            "contraseña los abre todos.",
        ),
        sent=Forms(
            "En un correo electrónico aparte le enviamos el Informe de Calificaciones del "
            "Estudiante de {first} como archivo PDF protegido. Para abrirlo, use esta "
            "contraseña:",
            "En un correo electrónico aparte le enviamos los {count} Informes de "
            "Calificaciones del Estudiante de {first} como archivos PDF protegidos. Para "
            "abrirlos, use esta contraseña:",
        ),
        title_later=Forms(
            "Nuevo Informe de Calificaciones del Estudiante",
            "Nuevos Informes de Calificaciones del Estudiante",
        ),
        attached_later=Forms(
            "Ya está disponible otro Informe de Calificaciones del Estudiante de {first}: "
            "adjunto encontrará el informe de las evaluaciones estatales de California "
            "({reports}).",
            "Ya están disponibles {count} Informes de Calificaciones del Estudiante más de "
            "{first}: adjuntos encontrará los informes de las evaluaciones estatales de "
            "California ({reports}).",
        ),
    ),
    "vi": Phrases(
        greeting_named="Kính gửi {guardian},",
        greeting_neutral="Kính gửi phụ huynh hoặc người giám hộ của {name},",
        title=Forms("Báo cáo Điểm số của Học sinh", "Các Báo cáo Điểm số của Học sinh"),
        attached=Forms(
            "Đính kèm là Báo cáo Điểm số của Học sinh của {first} từ các bài đánh giá "
            "toàn tiểu bang California ({reports}).",
            "Đính kèm là {count} Báo cáo Điểm số của Học sinh của {first} từ các bài đánh "
            "giá toàn tiểu bang California ({reports}).",
        ),
        protected=Forms(
            "Tệp PDF được bảo vệ bằng mật khẩu để giữ kín kết quả của con quý vị.",
            "Các tệp PDF được bảo vệ bằng mật khẩu để giữ kín kết quả của con quý vị.",
        ),
        open=Forms(
            "Hãy mở tệp đính kèm và nhập mật khẩu khi được hỏi.",
            "Hãy mở từng tệp đính kèm và nhập mật khẩu khi được hỏi: cùng một mật khẩu "
            "mở được tất cả các tệp.",
        ),
        sent=Forms(
            "Trong một email riêng, chúng tôi đã gửi cho quý vị Báo cáo Điểm số của Học "
            "sinh của {first} dưới dạng tệp PDF được bảo vệ. Để mở tệp, hãy dùng mật khẩu "
            "này:",
            "Trong một email riêng, chúng tôi đã gửi cho quý vị {count} Báo cáo Điểm số "
            "của Học sinh của {first} dưới dạng các tệp PDF được bảo vệ. Để mở các tệp, "
            "hãy dùng mật khẩu này:",
        ),
    ),
    "fil": Phrases(
        greeting_named="Mahal na {guardian},",
        greeting_neutral="Mahal na magulang o tagapag-alaga ni {name},",
        title=Forms("Ulat ng Iskor ng Mag-aaral", "Mga Ulat ng Iskor ng Mag-aaral"),
        attached=Forms(
            "Nakalakip ang Ulat ng Iskor ng Mag-aaral ni {first} mula sa mga pagtatasa sa "
            "buong estado ng California ({reports}).",
            "Nakalakip ang {count} Ulat ng Iskor ng Mag-aaral ni {first} mula sa mga "
            "pagtatasa sa buong estado ng California ({reports}).",
        ),
        protected=Forms(
            "Ang PDF file ay protektado ng password upang manatiling pribado ang mga "
            "resulta ng inyong anak.",
            "Ang mga PDF file ay protektado ng password upang manatiling pribado ang mga "
            "resulta ng inyong anak.",
        ),
        open=Forms(
            "Buksan ang kalakip at i-type ang password kapag hiningi.",
            "Buksan ang bawat kalakip at i-type ang password kapag hiningi: iisang password "
            "ang nagbubukas sa lahat ng ito.",
        ),
        sent=Forms(
            "Sa isang hiwalay na email, ipinadala namin sa inyo ang Ulat ng Iskor ng "
            "Mag-aaral ni {first} bilang protektadong PDF file. Upang buksan ito, gamitin "
            "ang password na ito:",
            "Sa isang hiwalay na email, ipinadala namin sa inyo ang {count} Ulat ng Iskor "
            "ng Mag-aaral ni {first} bilang mga protektadong PDF file. Upang buksan ang mga "
            "ito, gamitin ang password na ito:",
        ),
    ),
    "ko": Phrases(
        greeting_named="{guardian}님께,",
        greeting_neutral="{name} 학생의 학부모님 또는 보호자님께,",
        title=Forms("학생 점수 보고서", "학생 점수 보고서"),
        attached=Forms(
            "캘리포니아 주 학력평가({reports})에 대한 {first} 학생의 점수 보고서를 첨부해 "
            "드립니다.",
            "캘리포니아 주 학력평가({reports})에 대한 {first} 학생의 점수 보고서 {count}부를 "
            "첨부해 드립니다.",
        ),
        protected=Forms(
            "자녀의 결과를 비공개로 유지하기 위해 PDF 파일은 비밀번호로 보호되어 있습니다.",
            "자녀의 결과를 비공개로 유지하기 위해 PDF 파일들은 비밀번호로 보호되어 있습니다.",
        ),
        open=Forms(
            "첨부 파일을 열고 비밀번호를 묻는 창이 나오면 입력하십시오.",
            "각 첨부 파일을 열고 비밀번호를 묻는 창이 나오면 입력하십시오. 모든 파일의 "
            "비밀번호는 같습니다.",
        ),
        sent=Forms(
            "별도의 이메일로 {first} 학생의 점수 보고서를 보호된 PDF 파일로 보내 "
            "드렸습니다. 파일을 열려면 다음 비밀번호를 사용하십시오:",
            "별도의 이메일로 {first} 학생의 점수 보고서 {count}부를 보호된 PDF 파일로 보내 "
            "드렸습니다. 파일을 열려면 다음 비밀번호를 사용하십시오:",
        ),
    ),
    "zh-Hant": Phrases(
        greeting_named="{guardian} 您好：",
        greeting_neutral="{name} 的家長或監護人您好：",
        title=Forms("學生成績報告", "學生成績報告"),
        attached=Forms(
            "附件是 {first} 在加州全州評估（{reports}）中的學生成績報告。",
            "附件是 {first} 在加州全州評估（{reports}）中的 {count} 份學生成績報告。",
        ),
        protected=Forms(
            "為保護您孩子成績的隱私，此 PDF 檔案已設有密碼。",
            "為保護您孩子成績的隱私，這些 PDF 檔案已設有密碼。",
        ),
        open=Forms(
            "請打開附件，並在提示時輸入密碼。",
            "請打開每個附件，並在提示時輸入密碼；所有檔案使用同一個密碼。",
        ),
        sent=Forms(
            "我們已在另一封電子郵件中將 {first} 的學生成績報告以受保護的 PDF 檔案寄給您。"
            "請使用以下密碼開啟：",
            "我們已在另一封電子郵件中將 {first} 的 {count} 份學生成績報告以受保護的 PDF "
            "檔案寄給您。請使用以下密碼開啟：",
        ),
    ),
    "ar": Phrases(
        greeting_named="عزيزي/عزيزتي {guardian}،",
        greeting_neutral="عزيزي ولي أمر {name}،",
        title=Forms("تقرير درجات الطالب", "تقارير درجات الطالب", two="تقريرا درجات الطالب"),
        attached=Forms(
            "مرفق طيه تقرير درجات الطالب الخاص بـ {first} من تقييمات ولاية كاليفورنيا ({reports}).",
            "مرفقة طيه تقارير درجات الطالب الخاصة بـ {first} من تقييمات ولاية كاليفورنيا "
            "({reports}).",
            two="مرفق طيه تقريرا درجات الطالب الخاصان بـ {first} من تقييمات ولاية كاليفورنيا "
            "({reports}).",
        ),
        protected=Forms(
            "ملف PDF محمي بكلمة مرور للحفاظ على خصوصية نتائج طفلك.",
            "ملفات PDF محمية بكلمة مرور للحفاظ على خصوصية نتائج طفلك.",
            two="ملفا PDF محميان بكلمة مرور للحفاظ على خصوصية نتائج طفلك.",
        ),
        open=Forms(
            "افتح المرفق واكتب كلمة المرور عند طلبها.",
            "افتح كل مرفق واكتب كلمة المرور عند طلبها، فكلمة المرور نفسها تفتح كل الملفات.",
        ),
        sent=Forms(
            "أرسلنا إليك في رسالة بريد إلكتروني منفصلة تقرير درجات الطالب الخاص بـ {first} "
            "كملف PDF محمي. لفتحه، استخدم كلمة المرور هذه:",
            "أرسلنا إليك في رسالة بريد إلكتروني منفصلة تقارير درجات الطالب الخاصة بـ "
            "{first} كملفات PDF محمية. لفتحها، استخدم كلمة المرور هذه:",
            two="أرسلنا إليك في رسالة بريد إلكتروني منفصلة تقريري درجات الطالب الخاصين بـ "
            "{first} كملفي PDF محميين. لفتحهما، استخدم كلمة المرور هذه:",
        ),
    ),
}


def phrase_values(
    language: str,
    *,
    guardian: str,
    name: str,
    first: str,
    reports: str,
    count: int,
    later: bool = False,
) -> dict[str, str]:
    """The phrase placeholders' values for one family, in ``language`` (English if it has
    no phrases); ``later``: for a report message after the family was sent reports before."""
    phrases = PHRASES.get(language) or PHRASES["en"]
    fields = {
        "guardian": guardian,
        "name": name,
        "first": first,
        "reports": reports,
        "count": str(count),
    }
    greeting = phrases.greeting_named if guardian.strip() else phrases.greeting_neutral
    forms = {
        "reports_title": (later and phrases.title_later) or phrases.title,
        "reports_attached": (later and phrases.attached_later) or phrases.attached,
        "reports_protected": phrases.protected,
        "reports_open": phrases.open,
        "reports_sent": phrases.sent,
    }
    values = {"greeting": greeting.format_map(fields)}
    values.update({key: form.pick(count).format_map(fields) for key, form in forms.items()})
    return values
