"""The texts of a Student Score Report in the seven report languages.

English and Spanish are complete; Vietnamese, Filipino, Korean, Traditional Chinese and
Arabic carry the headings, labels, level names and the short explanations. A key missing in
a language falls back to English, so a half-translated key never breaks a report.

Over 600 lines on purpose: nearly all of it is the translation table itself.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Final

from caaspp_cli.vocabulary import LANGUAGES

ENGLISH: Final = "en"
RIGHT_TO_LEFT_LANGUAGES: Final = frozenset({"ar"})

# key -> language -> text. Placeholders in braces are filled with str.format.
MESSAGES: Final[dict[str, dict[str, str]]] = {
    "report_title": {
        "en": "Student Score Report",
        "es": "Informe de calificaciones del estudiante",
        "vi": "Báo cáo Điểm của Học sinh",
        "fil": "Ulat ng Iskor ng Mag-aaral",
        "ko": "학생 성적 보고서",
        "zh-Hant": "學生成績報告",
        "ar": "تقرير درجات الطالب",
    },
    "test.CAASPP": {
        "en": "California Assessment of Student Performance and Progress",
        "es": "Evaluación de California del Rendimiento y Progreso de los Estudiantes",
        "vi": "Đánh giá Thành tích và Sự tiến bộ của Học sinh California",
        "fil": "Pagtatasa ng California sa Pagganap at Pag-unlad ng Mag-aaral",
        "ko": "캘리포니아 학생 성취도 및 발전 평가",
        "zh-Hant": "加州學生表現與進步評估",
        "ar": "تقييم كاليفورنيا لأداء الطلاب وتقدمهم",
    },
    "test.CAST": {
        "en": "California Science Test",
        "es": "Prueba de Ciencias de California",
        "vi": "Bài kiểm tra Khoa học California",
        "fil": "Pagsusulit sa Agham ng California",
        "ko": "캘리포니아 과학 시험",
        "zh-Hant": "加州科學測驗",
        "ar": "اختبار كاليفورنيا للعلوم",
    },
    "test.CAAS": {
        "en": "California Alternate Assessments",
        "es": "Evaluaciones Alternativas de California",
        "vi": "Các bài Đánh giá Thay thế California",
        "fil": "Mga Alternatibong Pagtatasa ng California",
        "ko": "캘리포니아 대체 평가",
        "zh-Hant": "加州替代評估",
        "ar": "تقييمات كاليفورنيا البديلة",
    },
    "test.ELPAC": {
        "en": "English Language Proficiency Assessments for California",
        "es": "Evaluaciones del Dominio del Idioma Inglés de California",
        "vi": "Đánh giá Trình độ Thông thạo Tiếng Anh của California",
        "fil": "Mga Pagtatasa sa Kahusayan sa Wikang Ingles para sa California",
        "ko": "캘리포니아 영어 능력 평가",
        "zh-Hant": "加州英語能力評估",
        "ar": "تقييمات إتقان اللغة الإنجليزية في كاليفورنيا",
    },
    "label.ssid": {
        "en": "Statewide Student Identifier (SSID)",
        "es": "Identificador estatal del estudiante (SSID)",
        "vi": "Mã số Học sinh Toàn tiểu bang (SSID)",
        "fil": "Pang-estadong Identifier ng Mag-aaral (SSID)",
        "ko": "주 학생 식별 번호(SSID)",
        "zh-Hant": "全州學生識別碼 (SSID)",
        "ar": "رقم تعريف الطالب على مستوى الولاية (SSID)",
    },
    "label.birth_date": {
        "en": "Date of Birth",
        "es": "Fecha de nacimiento",
        "vi": "Ngày sinh",
        "fil": "Petsa ng Kapanganakan",
        "ko": "생년월일",
        "zh-Hant": "出生日期",
        "ar": "تاريخ الميلاد",
    },
    "label.grade": {
        "en": "Grade",
        "es": "Grado",
        "vi": "Lớp",
        "fil": "Baitang",
        "ko": "학년",
        "zh-Hant": "年級",
        "ar": "الصف",
    },
    "label.school": {
        "en": "School",
        "es": "Escuela",
        "vi": "Trường",
        "fil": "Paaralan",
        "ko": "학교",
        "zh-Hant": "學校",
        "ar": "المدرسة",
    },
    "label.lea": {
        "en": "District",
        "es": "Distrito",
        "vi": "Học khu",
        "fil": "Distrito",
        "ko": "교육구",
        "zh-Hant": "學區",
        "ar": "المنطقة التعليمية",
    },
    "label.test_date": {
        "en": "Test Date",
        "es": "Fecha de la prueba",
        "vi": "Ngày kiểm tra",
        "fil": "Petsa ng Pagsusulit",
        "ko": "시험 날짜",
        "zh-Hant": "測驗日期",
        "ar": "تاريخ الاختبار",
    },
    "label.guardian": {
        "en": "To the Parent/Guardian",
        "es": "Al padre, madre o tutor",
        "vi": "Kính gửi Phụ huynh/Người giám hộ",
        "fil": "Para sa Magulang/Tagapag-alaga",
        "ko": "학부모/보호자 귀하",
        "zh-Hant": "致家長/監護人",
        "ar": "إلى ولي الأمر",
    },
    "label.school_year": {
        "en": "School Year",
        "es": "Año escolar",
        "vi": "Năm học",
        "fil": "Taon ng Pag-aaral",
        "ko": "학년도",
        "zh-Hant": "學年",
        "ar": "العام الدراسي",
    },
    "label.score": {
        "en": "Score",
        "es": "Puntuación",
        "vi": "Điểm",
        "fil": "Iskor",
        "ko": "점수",
        "zh-Hant": "分數",
        "ar": "الدرجة",
    },
    "label.overall_score": {
        "en": "Overall Score",
        "es": "Puntuación general",
        "vi": "Điểm Tổng",
        "fil": "Kabuuang Iskor",
        "ko": "종합 점수",
        "zh-Hant": "總分",
        "ar": "الدرجة الإجمالية",
    },
    "label.level": {
        "en": "Level {level}: {name}",
        "es": "Nivel {level}: {name}",
        "vi": "Mức {level}: {name}",
        "fil": "Antas {level}: {name}",
        "ko": "수준 {level}: {name}",
        "zh-Hant": "等級 {level}：{name}",
        "ar": "المستوى {level}: {name}",
    },
    "label.level_short": {
        "en": "Level {level}",
        "es": "Nivel {level}",
        "vi": "Mức {level}",
        "fil": "Antas {level}",
        "ko": "수준 {level}",
        "zh-Hant": "等級 {level}",
        "ar": "المستوى {level}",
    },
    "label.margin": {
        "en": "Margin of error: ±{margin}",
        "es": "Margen de error: ±{margin}",
        "vi": "Sai số: ±{margin}",
        "fil": "Margin ng pagkakamali: ±{margin}",
        "ko": "오차 범위: ±{margin}",
        "zh-Hant": "誤差範圍：±{margin}",
        "ar": "هامش الخطأ: ±{margin}",
    },
    "label.page": {
        "en": "Page {page} of {pages}",
        "es": "Página {page} de {pages}",
        "vi": "Trang {page}/{pages}",
        "fil": "Pahina {page} ng {pages}",
        "ko": "{page}/{pages} 페이지",
        "zh-Hant": "第 {page} 頁，共 {pages} 頁",
        "ar": "صفحة {page} من {pages}",
    },
    "grade.KN": {
        "en": "Kindergarten",
        "es": "Kínder",
        "vi": "Mẫu giáo",
        "fil": "Kindergarten",
        "ko": "유치원",
        "zh-Hant": "幼稚園",
        "ar": "رياض الأطفال",
    },
    "heading.glance": {
        "en": "Results at a Glance",
        "es": "Resumen de resultados",
        "vi": "Tóm tắt Kết quả",
        "fil": "Buod ng mga Resulta",
        "ko": "결과 요약",
        "zh-Hant": "成績摘要",
        "ar": "ملخص النتائج",
    },
    "heading.what_is_caaspp": {
        "en": "What is the CAASPP?",
        "es": "¿Qué es el CAASPP?",
        "vi": "CAASPP là gì?",
        "fil": "Ano ang CAASPP?",
        "ko": "CAASPP란 무엇입니까?",
        "zh-Hant": "什麼是 CAASPP？",
        "ar": "ما هو CAASPP؟",
    },
    "heading.what_is_elpac": {
        "en": "What is the ELPAC?",
        "es": "¿Qué es el ELPAC?",
        "vi": "ELPAC là gì?",
        "fil": "Ano ang ELPAC?",
        "ko": "ELPAC이란 무엇입니까?",
        "zh-Hant": "什麼是 ELPAC？",
        "ar": "ما هو ELPAC؟",
    },
    "heading.scores_mean": {
        "en": "What do the scores mean?",
        "es": "¿Qué significan las puntuaciones?",
        "vi": "Điểm số có ý nghĩa gì?",
        "fil": "Ano ang kahulugan ng mga iskor?",
        "ko": "점수는 무엇을 의미합니까?",
        "zh-Hant": "分數代表什麼意思？",
        "ar": "ماذا تعني الدرجات؟",
    },
    "heading.areas": {
        "en": "Performance by Area",
        "es": "Rendimiento por área",
        "vi": "Kết quả theo Lĩnh vực",
        "fil": "Pagganap ayon sa Larangan",
        "ko": "영역별 성취도",
        "zh-Hant": "各領域表現",
        "ar": "الأداء حسب المجال",
    },
    "heading.domains": {
        "en": "Performance by Domain",
        "es": "Rendimiento por dominio",
        "vi": "Kết quả theo Phân môn",
        "fil": "Pagganap ayon sa Domain",
        "ko": "분야별 성취도",
        "zh-Hant": "各範疇表現",
        "ar": "الأداء حسب الميدان",
    },
    "heading.history": {
        "en": "Score History",
        "es": "Historial de puntuaciones",
        "vi": "Lịch sử Điểm",
        "fil": "Kasaysayan ng Iskor",
        "ko": "점수 기록",
        "zh-Hant": "歷年分數",
        "ar": "سجل الدرجات",
    },
    "heading.learn_more": {
        "en": "Where can I learn more?",
        "es": "¿Dónde puedo obtener más información?",
        "vi": "Tôi có thể tìm hiểu thêm ở đâu?",
        "fil": "Saan ako makakaalam pa?",
        "ko": "더 자세한 정보는 어디에서 찾을 수 있습니까?",
        "zh-Hant": "在哪裡可以了解更多？",
        "ar": "أين يمكنني معرفة المزيد؟",
    },
    "para.learn_more": {
        "en": (
            "The Starting Smarter website explains each part of this report, with sample "
            "test questions and ideas for talking with your child's teacher: {url}"
        ),
        "es": (
            "El sitio web Starting Smarter explica cada parte de este informe, con preguntas "
            "de prueba de muestra e ideas para hablar con el maestro de su hijo o hija: {url}"
        ),
        "vi": (
            "Trang web Starting Smarter giải thích từng phần của báo cáo này, kèm câu hỏi mẫu "
            "và gợi ý để trao đổi với giáo viên của con quý vị: {url}"
        ),
        "fil": (
            "Ipinapaliwanag ng website na Starting Smarter ang bawat bahagi ng ulat na ito, "
            "kasama ang mga halimbawang tanong at mga mungkahi sa pakikipag-usap sa guro ng "
            "inyong anak: {url}"
        ),
        "ko": (
            "Starting Smarter 웹사이트에서 이 보고서의 각 부분에 대한 설명과 예시 문항, 자녀의 "
            "교사와 상담할 때 도움이 되는 내용을 확인할 수 있습니다: {url}"
        ),
        "zh-Hant": (
            "Starting Smarter 網站說明本報告的每個部分，並提供測驗範例題目以及與孩子老師溝通的"
            "建議：{url}"
        ),
        "ar": (
            "يشرح موقع Starting Smarter كل جزء من هذا التقرير، مع أسئلة اختبار نموذجية وأفكار "
            "للتحدث مع معلم طفلك: {url}"
        ),
    },
    "para.what_is_caaspp": {
        "en": (
            "The California Assessment of Student Performance and Progress (CAASPP) shows "
            "how well students are learning California's standards in English language "
            "arts/literacy, mathematics and science. The results are one measure of your "
            "child's progress; report cards, classwork and conversations with teachers "
            "complete the picture."
        ),
        "es": (
            "La Evaluación de California del Rendimiento y Progreso de los Estudiantes "
            "(CAASPP) muestra qué tan bien aprenden los estudiantes las normas de California "
            "en artes del lenguaje en inglés/lectoescritura, matemáticas y ciencias. Los "
            "resultados son una medida del progreso de su hijo o hija; las boletas de "
            "calificaciones, el trabajo en clase y las conversaciones con los maestros "
            "completan el panorama."
        ),
        "vi": (
            "Chương trình Đánh giá Thành tích và Sự tiến bộ của Học sinh California (CAASPP) "
            "cho biết học sinh học các tiêu chuẩn của California về ngữ văn Anh/đọc viết, "
            "toán và khoa học tốt đến mức nào. Kết quả là một thước đo về sự tiến bộ của con "
            "quý vị; phiếu điểm, bài làm trên lớp và trao đổi với giáo viên sẽ bổ sung thêm "
            "thông tin."
        ),
        "fil": (
            "Ipinapakita ng California Assessment of Student Performance and Progress "
            "(CAASPP) kung gaano kahusay natututuhan ng mga mag-aaral ang mga pamantayan ng "
            "California sa sining ng wikang Ingles/literasiya, matematika at agham. Ang mga "
            "resulta ay isang sukatan ng pag-unlad ng inyong anak; kinukumpleto ito ng "
            "report card, gawain sa klase at pakikipag-usap sa mga guro."
        ),
        "ko": (
            "캘리포니아 학생 성취도 및 발전 평가(CAASPP)는 학생들이 영어 언어 과목/문해력, "
            "수학, 과학에서 캘리포니아 학업 기준을 얼마나 잘 배우고 있는지 보여 줍니다. 이 "
            "결과는 자녀의 발전을 보여 주는 여러 척도 중 하나이며, 성적표와 수업 활동, "
            "교사와의 상담이 이를 보완합니다."
        ),
        "zh-Hant": (
            "加州學生表現與進步評估（CAASPP）顯示學生在英語語言藝術/讀寫、數學和科學方面"
            "學習加州標準的情況。測驗結果是衡量您孩子進步的方式之一；成績單、課堂作業以及"
            "與老師的溝通可提供更完整的了解。"
        ),
        "ar": (
            "يُظهر تقييم كاليفورنيا لأداء الطلاب وتقدمهم (CAASPP) مدى تعلّم الطلاب لمعايير "
            "كاليفورنيا في فنون اللغة الإنجليزية/القراءة والكتابة والرياضيات والعلوم. "
            "النتائج مقياس واحد لتقدم طفلك، وتكمل الصورة بطاقات التقدير والعمل الصفي "
            "والحوار مع المعلمين."
        ),
    },
    "para.what_is_elpac": {
        "en": (
            "The English Language Proficiency Assessments for California (ELPAC) measure how "
            "well students who are learning English listen, speak, read and write in "
            "English. Each year's results help teachers plan support and help decide when a "
            "student is ready to be reclassified as fluent English proficient."
        ),
        "es": (
            "Las Evaluaciones del Dominio del Idioma Inglés de California (ELPAC) miden qué "
            "tan bien los estudiantes que aprenden inglés escuchan, hablan, leen y escriben "
            "en inglés. Los resultados de cada año ayudan a los maestros a planificar el "
            "apoyo y a decidir cuándo un estudiante está listo para ser reclasificado como "
            "competente en inglés."
        ),
        "vi": (
            "Các bài Đánh giá Trình độ Thông thạo Tiếng Anh của California (ELPAC) đo lường "
            "khả năng nghe, nói, đọc và viết tiếng Anh của học sinh đang học tiếng Anh. Kết "
            "quả hằng năm giúp giáo viên lên kế hoạch hỗ trợ và quyết định khi nào học sinh "
            "sẵn sàng được tái phân loại là thông thạo tiếng Anh."
        ),
        "fil": (
            "Sinusukat ng English Language Proficiency Assessments for California (ELPAC) "
            "kung gaano kahusay nakikinig, nagsasalita, nagbabasa at sumusulat sa Ingles ang "
            "mga mag-aaral na nag-aaral ng Ingles. Tinutulungan ng mga resulta bawat taon ang "
            "mga guro na magplano ng suporta at magpasya kung kailan handa nang ma-reclassify "
            "ang mag-aaral bilang mahusay sa Ingles."
        ),
        "ko": (
            "캘리포니아 영어 능력 평가(ELPAC)는 영어를 배우는 학생들이 영어로 얼마나 잘 듣고, "
            "말하고, 읽고, 쓰는지 측정합니다. 매년의 결과는 교사가 지원 계획을 세우고 학생이 "
            "영어 능통자로 재분류될 준비가 되었는지 결정하는 데 도움이 됩니다."
        ),
        "zh-Hant": (
            "加州英語能力評估（ELPAC）衡量正在學習英語的學生聽、說、讀、寫英語的能力。每年的"
            "結果可幫助老師規劃支援，並決定學生何時可重新分類為英語流利。"
        ),
        "ar": (
            "تقيس تقييمات إتقان اللغة الإنجليزية في كاليفورنيا (ELPAC) مدى إتقان الطلاب الذين "
            "يتعلمون الإنجليزية للاستماع والتحدث والقراءة والكتابة بها. تساعد نتائج كل عام "
            "المعلمين على تخطيط الدعم وتحديد موعد استعداد الطالب لإعادة تصنيفه متقنًا للغة "
            "الإنجليزية."
        ),
    },
    "para.scores_mean.sb": {
        "en": (
            "Each score falls into one of four achievement levels. Level 3 (Standard Met) and "
            "Level 4 (Standard Exceeded) mean your child is on track for the next grade and, "
            "in high school, for college and careers. Every test has a margin of error: "
            "taking it again could give a slightly different score."
        ),
        "es": (
            "Cada puntuación corresponde a uno de cuatro niveles de logro. El Nivel 3 "
            "(Cumplió con la norma) y el Nivel 4 (Superó la norma) indican que su hijo o hija "
            "va bien encaminado para el siguiente grado y, en la preparatoria, para la "
            "universidad y una carrera. Toda prueba tiene un margen de error: al repetirla se "
            "podría obtener una puntuación un poco diferente."
        ),
        "vi": (
            "Mỗi điểm số thuộc một trong bốn mức thành tích. Mức 3 (Đạt Tiêu chuẩn) và Mức 4 "
            "(Vượt Tiêu chuẩn) cho thấy con quý vị đang đi đúng hướng cho lớp kế tiếp và, ở "
            "trung học, cho đại học và nghề nghiệp. Mọi bài kiểm tra đều có sai số: làm lại "
            "có thể cho điểm hơi khác."
        ),
        "fil": (
            "Ang bawat iskor ay nabibilang sa isa sa apat na antas ng tagumpay. Ang Antas 3 "
            "(Naabot ang Pamantayan) at Antas 4 (Nalampasan ang Pamantayan) ay nangangahulugang "
            "handa ang inyong anak para sa susunod na baitang at, sa high school, para sa "
            "kolehiyo at karera. May margin ng pagkakamali ang bawat pagsusulit: maaaring "
            "bahagyang maiba ang iskor kung uulitin ito."
        ),
        "ko": (
            "각 점수는 네 가지 성취 수준 중 하나에 해당합니다. 수준 3(기준 충족)과 수준 4(기준 "
            "초과)는 자녀가 다음 학년, 그리고 고등학교의 경우 대학과 진로를 위해 순조롭게 "
            "나아가고 있음을 뜻합니다. 모든 시험에는 오차가 있어 다시 보면 점수가 조금 다를 "
            "수 있습니다."
        ),
        "zh-Hant": (
            "每個分數都屬於四個成就等級之一。等級 3（達到標準）和等級 4（超越標準）表示您的"
            "孩子已為升上下一個年級做好準備；在高中階段，則表示已為升學和就業做好準備。每項"
            "測驗都有誤差範圍：重新測驗的分數可能略有不同。"
        ),
        "ar": (
            "تقع كل درجة ضمن أحد مستويات الإنجاز الأربعة. يعني المستوى 3 (حقق المعيار) "
            "والمستوى 4 (تجاوز المعيار) أن طفلك يسير على الطريق الصحيح للصف التالي، وفي "
            "المرحلة الثانوية للجامعة والمهنة. لكل اختبار هامش خطأ: قد تختلف الدرجة قليلًا "
            "عند إعادته."
        ),
    },
    "para.scores_mean.caa": {
        "en": (
            "The California Alternate Assessments are for students whose individualized "
            "education program (IEP) calls for them. Each score falls into one of three "
            "levels; Level 3 (Understanding) means your child met the alternate achievement "
            "standard for the grade."
        ),
        "es": (
            "Las Evaluaciones Alternativas de California son para estudiantes cuyo programa "
            "de educación individualizada (IEP) así lo indica. Cada puntuación corresponde a "
            "uno de tres niveles; el Nivel 3 (Comprensión) significa que su hijo o hija "
            "cumplió con la norma alternativa de logro del grado."
        ),
        "vi": (
            "Các bài Đánh giá Thay thế California dành cho học sinh có chương trình giáo dục "
            "cá nhân hóa (IEP) yêu cầu. Mỗi điểm số thuộc một trong ba mức; Mức 3 (Hiểu biết) "
            "nghĩa là con quý vị đã đạt tiêu chuẩn thành tích thay thế của lớp."
        ),
        "fil": (
            "Ang California Alternate Assessments ay para sa mga mag-aaral na itinakda ng "
            "kanilang individualized education program (IEP). Ang bawat iskor ay nabibilang "
            "sa isa sa tatlong antas; ang Antas 3 (Pag-unawa) ay nangangahulugang naabot ng "
            "inyong anak ang alternatibong pamantayan para sa baitang."
        ),
        "ko": (
            "캘리포니아 대체 평가는 개별화 교육 프로그램(IEP)에서 요구하는 학생을 위한 "
            "평가입니다. 각 점수는 세 가지 수준 중 하나에 해당하며, 수준 3(이해)은 자녀가 "
            "해당 학년의 대체 성취 기준을 충족했음을 뜻합니다."
        ),
        "zh-Hant": (
            "加州替代評估適用於個別化教育計畫（IEP）要求參加的學生。每個分數都屬於三個等級"
            "之一；等級 3（理解）表示您的孩子已達到該年級的替代成就標準。"
        ),
        "ar": (
            "تقييمات كاليفورنيا البديلة مخصصة للطلاب الذين يتطلبها برنامجهم التعليمي الفردي "
            "(IEP). تقع كل درجة ضمن أحد ثلاثة مستويات، ويعني المستوى 3 (الفهم) أن طفلك حقق "
            "معيار الإنجاز البديل للصف."
        ),
    },
    "para.scores_mean.elpac": {
        "en": (
            "The Overall score combines Oral Language (Listening and Speaking) and Written "
            "Language (Reading and Writing). Level 4 (Well Developed) means your child can "
            "usually use English to learn new things at school and to interact in social "
            "situations."
        ),
        "es": (
            "La puntuación general combina el lenguaje oral (comprensión auditiva y expresión "
            "oral) y el lenguaje escrito (lectura y escritura). El Nivel 4 (Bien desarrollado) "
            "significa que su hijo o hija generalmente puede usar el inglés para aprender "
            "cosas nuevas en la escuela y para interactuar en situaciones sociales."
        ),
        "vi": (
            "Điểm Tổng kết hợp Ngôn ngữ Nói (Nghe và Nói) và Ngôn ngữ Viết (Đọc và Viết). "
            "Mức 4 (Phát triển Tốt) nghĩa là con quý vị thường có thể dùng tiếng Anh để học "
            "điều mới ở trường và giao tiếp trong các tình huống xã hội."
        ),
        "fil": (
            "Pinagsasama ng Kabuuang Iskor ang Wikang Pasalita (Pakikinig at Pagsasalita) at "
            "Wikang Pasulat (Pagbasa at Pagsulat). Ang Antas 4 (Mahusay na Nalinang) ay "
            "nangangahulugang karaniwang nagagamit ng inyong anak ang Ingles upang matuto ng "
            "mga bagong bagay sa paaralan at makipag-ugnayan sa iba."
        ),
        "ko": (
            "종합 점수는 구두 언어(듣기 및 말하기)와 문자 언어(읽기 및 쓰기)를 합한 것입니다. "
            "수준 4(잘 발달됨)는 자녀가 대개 영어로 학교에서 새로운 것을 배우고 사회적 "
            "상황에서 소통할 수 있음을 뜻합니다."
        ),
        "zh-Hant": (
            "總分結合口語（聆聽與口說）和書面語（閱讀與寫作）。等級 4（發展良好）表示您的"
            "孩子通常能用英語在學校學習新知識並與他人互動。"
        ),
        "ar": (
            "تجمع الدرجة الإجمالية بين اللغة الشفهية (الاستماع والتحدث) واللغة المكتوبة "
            "(القراءة والكتابة). يعني المستوى 4 (متطور جيدًا) أن طفلك يستطيع عادةً استخدام "
            "الإنجليزية لتعلّم أشياء جديدة في المدرسة والتفاعل في المواقف الاجتماعية."
        ),
    },
    "subject.ELA": {
        "en": "English Language Arts/Literacy",
        "es": "Artes del lenguaje en inglés/Lectoescritura",
        "vi": "Ngữ văn Anh/Đọc viết",
        "fil": "Sining ng Wikang Ingles/Literasiya",
        "ko": "영어 언어 과목/문해력",
        "zh-Hant": "英語語言藝術/讀寫",
        "ar": "فنون اللغة الإنجليزية/القراءة والكتابة",
    },
    "subject.Math": {
        "en": "Mathematics",
        "es": "Matemáticas",
        "vi": "Toán",
        "fil": "Matematika",
        "ko": "수학",
        "zh-Hant": "數學",
        "ar": "الرياضيات",
    },
    "subject.Science": {
        "en": "Science",
        "es": "Ciencias",
        "vi": "Khoa học",
        "fil": "Agham",
        "ko": "과학",
        "zh-Hant": "科學",
        "ar": "العلوم",
    },
    "subject.ELPAC": {
        "en": "English Language Proficiency",
        "es": "Dominio del idioma inglés",
        "vi": "Trình độ Thông thạo Tiếng Anh",
        "fil": "Kahusayan sa Wikang Ingles",
        "ko": "영어 능력",
        "zh-Hant": "英語能力",
        "ar": "إتقان اللغة الإنجليزية",
    },
    "level.sb.4": {
        "en": "Standard Exceeded",
        "es": "Superó la norma",
        "vi": "Vượt Tiêu chuẩn",
        "fil": "Nalampasan ang Pamantayan",
        "ko": "기준 초과",
        "zh-Hant": "超越標準",
        "ar": "تجاوز المعيار",
    },
    "level.sb.3": {
        "en": "Standard Met",
        "es": "Cumplió con la norma",
        "vi": "Đạt Tiêu chuẩn",
        "fil": "Naabot ang Pamantayan",
        "ko": "기준 충족",
        "zh-Hant": "達到標準",
        "ar": "حقق المعيار",
    },
    "level.sb.2": {
        "en": "Standard Nearly Met",
        "es": "Casi cumplió con la norma",
        "vi": "Gần Đạt Tiêu chuẩn",
        "fil": "Halos Naabot ang Pamantayan",
        "ko": "기준 근접",
        "zh-Hant": "接近標準",
        "ar": "اقترب من تحقيق المعيار",
    },
    "level.sb.1": {
        "en": "Standard Not Met",
        "es": "No cumplió con la norma",
        "vi": "Chưa Đạt Tiêu chuẩn",
        "fil": "Hindi Naabot ang Pamantayan",
        "ko": "기준 미달",
        "zh-Hant": "未達標準",
        "ar": "لم يحقق المعيار",
    },
    "level.caa.3": {
        "en": "Understanding",
        "es": "Comprensión",
        "vi": "Hiểu biết",
        "fil": "Pag-unawa",
        "ko": "이해",
        "zh-Hant": "理解",
        "ar": "الفهم",
    },
    "level.caa.2": {
        "en": "Foundational Understanding",
        "es": "Comprensión básica",
        "vi": "Hiểu biết Cơ bản",
        "fil": "Pundamental na Pag-unawa",
        "ko": "기초적 이해",
        "zh-Hant": "基礎理解",
        "ar": "فهم أساسي",
    },
    "level.caa.1": {
        "en": "Limited Understanding",
        "es": "Comprensión limitada",
        "vi": "Hiểu biết Hạn chế",
        "fil": "Limitadong Pag-unawa",
        "ko": "제한적 이해",
        "zh-Hant": "有限理解",
        "ar": "فهم محدود",
    },
    "level.elpac.4": {
        "en": "Well Developed",
        "es": "Bien desarrollado",
        "vi": "Phát triển Tốt",
        "fil": "Mahusay na Nalinang",
        "ko": "잘 발달됨",
        "zh-Hant": "發展良好",
        "ar": "متطور جيدًا",
    },
    "level.elpac.3": {
        "en": "Moderately Developed",
        "es": "Moderadamente desarrollado",
        "vi": "Phát triển Vừa phải",
        "fil": "Katamtamang Nalinang",
        "ko": "보통 발달됨",
        "zh-Hant": "中等發展",
        "ar": "متطور بشكل متوسط",
    },
    "level.elpac.2": {
        "en": "Somewhat Developed",
        "es": "Algo desarrollado",
        "vi": "Phát triển Phần nào",
        "fil": "Medyo Nalinang",
        "ko": "어느 정도 발달됨",
        "zh-Hant": "稍有發展",
        "ar": "متطور إلى حد ما",
    },
    "level.elpac.1": {
        "en": "Beginning to Develop",
        "es": "Comenzando a desarrollarse",
        "vi": "Bắt đầu Phát triển",
        "fil": "Nagsisimulang Malinang",
        "ko": "발달 시작 단계",
        "zh-Hant": "開始發展",
        "ar": "في بداية التطور",
    },
    # Area and domain results: three descriptors, lowest first.
    "area.sb.1": {
        "en": "Below Standard",
        "es": "Por debajo de la norma",
        "vi": "Dưới Tiêu chuẩn",
        "fil": "Mas Mababa sa Pamantayan",
        "ko": "기준 미만",
        "zh-Hant": "低於標準",
        "ar": "دون المعيار",
    },
    "area.sb.2": {
        "en": "At or Near Standard",
        "es": "En o cerca de la norma",
        "vi": "Đạt hoặc Gần Tiêu chuẩn",
        "fil": "Nasa o Malapit sa Pamantayan",
        "ko": "기준 수준 또는 근접",
        "zh-Hant": "達到或接近標準",
        "ar": "عند المعيار أو قريب منه",
    },
    "area.sb.3": {
        "en": "Above Standard",
        "es": "Por encima de la norma",
        "vi": "Trên Tiêu chuẩn",
        "fil": "Higit sa Pamantayan",
        "ko": "기준 이상",
        "zh-Hant": "高於標準",
        "ar": "فوق المعيار",
    },
    "area.cast.1": {
        "en": "Below Standard",
        "es": "Por debajo de la norma",
        "vi": "Dưới Tiêu chuẩn",
        "fil": "Mas Mababa sa Pamantayan",
        "ko": "기준 미만",
        "zh-Hant": "低於標準",
        "ar": "دون المعيار",
    },
    "area.cast.2": {
        "en": "Near Standard",
        "es": "Cerca de la norma",
        "vi": "Gần Tiêu chuẩn",
        "fil": "Malapit sa Pamantayan",
        "ko": "기준 근접",
        "zh-Hant": "接近標準",
        "ar": "قريب من المعيار",
    },
    "area.cast.3": {
        "en": "Above Standard",
        "es": "Por encima de la norma",
        "vi": "Trên Tiêu chuẩn",
        "fil": "Higit sa Pamantayan",
        "ko": "기준 이상",
        "zh-Hant": "高於標準",
        "ar": "فوق المعيار",
    },
    "area.elpac.1": {
        "en": "Beginning to Develop",
        "es": "Comenzando a desarrollarse",
        "vi": "Bắt đầu Phát triển",
        "fil": "Nagsisimulang Malinang",
        "ko": "발달 시작 단계",
        "zh-Hant": "開始發展",
        "ar": "في بداية التطور",
    },
    "area.elpac.2": {
        "en": "Somewhat/Moderately Developed",
        "es": "Algo/moderadamente desarrollado",
        "vi": "Phát triển Phần nào/Vừa phải",
        "fil": "Medyo/Katamtamang Nalinang",
        "ko": "어느 정도/보통 발달됨",
        "zh-Hant": "稍有/中等發展",
        "ar": "متطور إلى حد ما/بشكل متوسط",
    },
    "area.elpac.3": {
        "en": "Well Developed",
        "es": "Bien desarrollado",
        "vi": "Phát triển Tốt",
        "fil": "Mahusay na Nalinang",
        "ko": "잘 발달됨",
        "zh-Hant": "發展良好",
        "ar": "متطور جيدًا",
    },
    "area.reading": {
        "en": "Reading",
        "es": "Lectura",
        "vi": "Đọc",
        "fil": "Pagbasa",
        "ko": "읽기",
        "zh-Hant": "閱讀",
        "ar": "القراءة",
    },
    "area.writing": {
        "en": "Writing",
        "es": "Escritura",
        "vi": "Viết",
        "fil": "Pagsulat",
        "ko": "쓰기",
        "zh-Hant": "寫作",
        "ar": "الكتابة",
    },
    "area.listening": {
        "en": "Listening",
        "es": "Comprensión auditiva",
        "vi": "Nghe",
        "fil": "Pakikinig",
        "ko": "듣기",
        "zh-Hant": "聆聽",
        "ar": "الاستماع",
    },
    "area.speaking": {
        "en": "Speaking",
        "es": "Expresión oral",
        "vi": "Nói",
        "fil": "Pagsasalita",
        "ko": "말하기",
        "zh-Hant": "口說",
        "ar": "التحدث",
    },
    "area.research": {
        "en": "Research/Inquiry",
        "es": "Investigación/Indagación",
        "vi": "Nghiên cứu/Tìm hiểu",
        "fil": "Pananaliksik/Pagsisiyasat",
        "ko": "연구/탐구",
        "zh-Hant": "研究/探究",
        "ar": "البحث/الاستقصاء",
    },
    "area.concepts": {
        "en": "Concepts and Procedures",
        "es": "Conceptos y procedimientos",
        "vi": "Khái niệm và Quy trình",
        "fil": "Mga Konsepto at Pamamaraan",
        "ko": "개념 및 절차",
        "zh-Hant": "概念與程序",
        "ar": "المفاهيم والإجراءات",
    },
    "area.problem_solving": {
        "en": "Problem Solving and Modeling & Data Analysis",
        "es": "Resolución de problemas, modelado y análisis de datos",
        "vi": "Giải quyết Vấn đề, Mô hình hóa và Phân tích Dữ liệu",
        "fil": "Paglutas ng Problema, Pagmomodelo at Pagsusuri ng Datos",
        "ko": "문제 해결, 모델링 및 데이터 분석",
        "zh-Hant": "解決問題、建模與資料分析",
        "ar": "حل المشكلات والنمذجة وتحليل البيانات",
    },
    "area.reasoning": {
        "en": "Communicating Reasoning",
        "es": "Comunicación del razonamiento",
        "vi": "Trình bày Lập luận",
        "fil": "Pagpapahayag ng Pangangatwiran",
        "ko": "추론 의사소통",
        "zh-Hant": "表達推理",
        "ar": "توصيل الاستدلال",
    },
    "area.life": {
        "en": "Life Sciences",
        "es": "Ciencias biológicas",
        "vi": "Khoa học Sự sống",
        "fil": "Agham Pambuhay",
        "ko": "생명 과학",
        "zh-Hant": "生命科學",
        "ar": "علوم الحياة",
    },
    "area.physical": {
        "en": "Physical Sciences",
        "es": "Ciencias físicas",
        "vi": "Khoa học Vật lý",
        "fil": "Agham Pisikal",
        "ko": "물리 과학",
        "zh-Hant": "物理科學",
        "ar": "العلوم الفيزيائية",
    },
    "area.earth": {
        "en": "Earth and Space Sciences",
        "es": "Ciencias de la Tierra y del espacio",
        "vi": "Khoa học Trái đất và Không gian",
        "fil": "Agham Pandaigdig at Pangkalawakan",
        "ko": "지구 및 우주 과학",
        "zh-Hant": "地球與太空科學",
        "ar": "علوم الأرض والفضاء",
    },
    "area.oral": {
        "en": "Oral Language",
        "es": "Lenguaje oral",
        "vi": "Ngôn ngữ Nói",
        "fil": "Wikang Pasalita",
        "ko": "구두 언어",
        "zh-Hant": "口語",
        "ar": "اللغة الشفهية",
    },
    "area.written": {
        "en": "Written Language",
        "es": "Lenguaje escrito",
        "vi": "Ngôn ngữ Viết",
        "fil": "Wikang Pasulat",
        "ko": "문자 언어",
        "zh-Hant": "書面語",
        "ar": "اللغة المكتوبة",
    },
    "footer.synthetic": {
        "en": "Synthetic report generated by the caaspp sandbox — not a real student",
        "es": "Informe sintético generado por el sandbox de caaspp — no es un estudiante real",
        "vi": "Báo cáo giả lập do sandbox caaspp tạo ra — không phải học sinh thật",
        "fil": "Sintetikong ulat na ginawa ng caaspp sandbox — hindi tunay na mag-aaral",
        "ko": "caaspp 샌드박스가 만든 가상 보고서 — 실제 학생이 아닙니다",
        "zh-Hant": "由 caaspp 沙盒產生的模擬報告 — 並非真實學生",
        "ar": "تقرير اصطناعي أنشأته بيئة caaspp التجريبية — ليس طالبًا حقيقيًا",
    },
}

# The notice on a report whose language could not be drawn; always English, because the
# fonts that would draw the translation are the ones missing.
# The fonts extra's packages by name: "caaspp[fonts]" would need caaspp on PyPI, and
# caaspp is installed from its repository (`pip install ".[fonts]"` there does the same).
FONTS_INSTALL_COMMAND: Final = "python3 -m pip install weblate-fonts uharfbuzz"

MISSING_FONT_NOTICE: Final = (
    "This report is for a family whose correspondence language is {language}. The "
    "translated text needs fonts that are not installed, so this copy is in English. "
    "Install them with: " + FONTS_INSTALL_COMMAND
)

_MONTHS: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "fil": (
        "Enero",
        "Pebrero",
        "Marso",
        "Abril",
        "Mayo",
        "Hunyo",
        "Hulyo",
        "Agosto",
        "Setyembre",
        "Oktubre",
        "Nobyembre",
        "Disyembre",
    ),
    "ar": (
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ),
}


class Messages:
    """The texts of one report language, with English behind every missing key."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else ENGLISH
        self.right_to_left = self.language in RIGHT_TO_LEFT_LANGUAGES

    def __getitem__(self, key: str) -> str:
        texts = MESSAGES[key]
        return texts.get(self.language) or texts[ENGLISH]

    def format(self, key: str, **values: object) -> str:
        return self[key].format(**values)

    def date(self, day: date) -> str:
        return format_date(day, self.language)

    def grade(self, grade: str) -> str:
        """A grade as a family reads it: "Kindergarten", "5"."""
        return self["grade.KN"] if grade == "KN" else str(int(grade))


def format_date(day: date, language: str) -> str:
    """A date written the way the language writes it."""
    month = day.month
    if language == "es":
        return f"{day.day} de {_MONTHS['es'][month - 1]} de {day.year}"
    if language == "vi":
        return f"ngày {day.day} tháng {month} năm {day.year}"
    if language == "fil":
        return f"{_MONTHS['fil'][month - 1]} {day.day}, {day.year}"
    if language == "ko":
        return f"{day.year}년 {month}월 {day.day}일"
    if language == "zh-Hant":
        return f"{day.year}年{month}月{day.day}日"
    if language == "ar":
        return f"{day.day} {_MONTHS['ar'][month - 1]} {day.year}"
    return f"{_MONTHS['en'][month - 1]} {day.day}, {day.year}"


def school_year(spring_year: int) -> str:
    """The school year of a spring administration: 2025 -> "2024–25"."""
    return f"{spring_year - 1}–{spring_year % 100:02d}"


@cache
def characters(language: str) -> str:
    """Every character the fixed texts of a language can put on a report, sorted.

    Fonts for large scripts are cut down to these (plus Latin) once per process, which is
    what keeps a Korean or Chinese report small and fast.
    """
    used: set[str] = set()
    for texts in MESSAGES.values():
        used.update(texts.get(language, ""))
    for month in range(1, 13):
        used.update(format_date(date(2000, month, 28), language))
    used.update(MISSING_FONT_NOTICE)
    return "".join(sorted(used))
