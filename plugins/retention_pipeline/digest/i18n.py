"""Everything language-specific in the digest: message catalogs, plural rules, number and date formats.

The digest is read by people who are not analysts, so numbers are written the way their
language writes them (``1,234.5`` in English, ``1 234,5`` in Russian) and words agree
with numbers. Templates and charts never format a number themselves: they receive the
strings made here, which is what keeps the HTML, the plain text and the subject equal.

A catalog value is a ``str.format`` template; a tuple is a set of plural forms
(English: one, other; Russian: one, few, many). Both catalogs must have the same keys
(a unit test checks it), so a new sentence cannot silently fall back to English.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

SUPPORTED_LANGUAGES = ("en", "ru")

ARROW_UP = "\u25b2"  # ▲
ARROW_DOWN = "\u25bc"  # ▼
NBSP = "\u00a0"

Catalog = dict[str, str | tuple[str, ...]]

EN: Catalog = {
    "title": "Customer digest",
    "subject": "Customer digest {week}: {headline}",
    "subject.churn": "churn {rate}",
    "subject.churn_change": "churn {rate} ({change})",
    "subject.active": "{active} active {customers}",
    "week_range": "Week {week}: {start} \u2013 {end}",
    "banner.checks_failed": (
        "Data quality checks failed for this week: treat the numbers below with caution."
    ),
    "section.summary": "In plain words",
    "section.kpis": "This week in numbers",
    "section.risk": "Who we may lose",
    "section.stages": "Where our customers are",
    "section.trend": "Trend over the last weeks",
    "section.cohorts": "Do customers come back? Monthly cohorts",
    "section.voice": "Voice of the customer",
    "col.metric": "Metric",
    "col.value": "This week",
    "col.change": "vs last week",
    "col.level": "Level",
    "col.total": "Total",
    "col.week": "Week",
    "col.stage": "Stage",
    "col.customers": "Customers",
    "col.share": "Share",
    "col.cohort": "Cohort (size)",
    "tier": "Tier {tier}",
    "kpi.active_customers": "Active customers",
    "kpi.churn_rate": "Churn rate",
    "kpi.retention_rate": "Retention rate",
    "kpi.reactivation_rate": "Reactivation rate",
    "kpi.new_customers": "New customers",
    "kpi.churned_customers": "Churned this week",
    "kpi.reactivated_customers": "Came back (reactivated)",
    "kpi.revenue": "Revenue",
    "kpi.orders": "Orders",
    "kpi.arpu": "Revenue per active customer",
    "kpi.average_check": "Average check",
    "kpi.nps": "Would recommend us (NPS)",
    "kpi.csi": "Satisfaction index (CSI)",
    "kpi.survey_responses": "Survey responses",
    "change.none": "no change",
    "change.na": "n/a",
    "unit.pp": "pp",
    "stage.active": "Active",
    "stage.churn risk": "Churn risk",
    "stage.potential churn": "Potential churn",
    "stage.churned": "Churned",
    "stage.no orders": "No orders yet",
    "level.red": "Red",
    "level.orange": "Orange",
    "level.amber": "Amber",
    "level.yellow": "Yellow",
    "level.green": "Green",
    "customers": ("customer", "customers"),
    "responses": ("response", "responses"),
    "orders": ("order", "orders"),
    "sentence.active": (
        "We have {active} active {customers} ({change} vs last week). This week {new} "
        "ordered for the first time and {reactivated} came back after a break."
    ),
    "sentence.churn": (
        "{churned} {customers} moved to churned: {rate} of the customers we still had "
        "at the start of the week ({change} vs last week; lower is better)."
    ),
    "sentence.retention": (
        "{rate} of the customers we had at the start of the week were still with us at its end."
    ),
    "sentence.risk": (
        "{count} {customers} are at red or orange risk level: likely losses, worth a "
        "call first; {valuable} of them are among our most valuable (tier A or B)."
    ),
    "sentence.risk_none": "No customers are at red or orange risk level this week.",
    "sentence.complaints": (
        "{count} of them have an open complaint: a complaint handled well wins loyalty back."
    ),
    "sentence.revenue": (
        "Revenue was {revenue} from {orders} {orders_word}, with an average check of {check}."
    ),
    "sentence.nps": "NPS this week is {nps}, from {responses} survey {responses_word}.",
    "risk.caption": "Customers by risk level (rows) and value tier (columns, A = most valuable).",
    "voice.detractors": "Unhappy customers (scores 0\u20136)",
    "voice.promoters": "Happy customers (scores 9\u201310)",
    "voice.none": "No comments this week.",
    "voice.meta": "score {score} \u00b7 {channel} \u00b7 {date}",
    "channel.unknown": "unknown channel",
    "chart.trend.title": "Active customers and churn rate",
    "chart.trend.active": "Active customers",
    "chart.trend.churn": "Churn rate",
    "chart.trend.target": "target {target}",
    "chart.stages.title": "Customers by churn stage",
    "chart.cohort.title": "Share of each monthly cohort ordering again",
    "chart.cohort.x": "Months since first order",
    "chart.cohort.y": "First-order month",
    "alt.trend": "Chart: active customers and churn rate by week",
    "alt.stages": "Chart: customers by churn stage",
    "alt.cohort": "Heatmap: monthly cohort retention",
    "footer.freshness": "Data loaded up to {when}.",
    "footer.freshness_unknown": "Data load time unknown.",
    "footer.as_of": "Customer stages as of {date}.",
    "footer.checks_passed": "Quality checks: passed.",
    "footer.checks_passed_detail": "Quality checks: passed ({checks} checks, {warnings} warnings).",
    "footer.checks_failed": "Quality checks: FAILED.",
    "footer.checks_unknown": "Quality checks: not reported.",
    "footer.about": (
        "Sent automatically by the retention pipeline once a week. Customer contact data is never included."
    ),
    "headline.target": "Churn {rate} against our target of {target}",
    "headline.progress.above": "{gap} to go",
    "headline.progress.met": "target met",
    "subject.target": "target {target}",
    "sentence.target.above": (
        "Our key result is a weekly churn rate of {target} or lower: we are {gap} above it{since}."
    ),
    "sentence.target.met": (
        "Our key result is a weekly churn rate of {target} or lower: this week we met it{since}."
    ),
    "sentence.target.since": " (it was {first} in {week})",
    "section.flows": "How customers moved between stages this week",
    "flows.caption": "Rows: stage at the start of the week; columns: stage at its end.",
    "flows.worse": (
        "{worse} {customers} moved closer to churn and {better} moved back towards active; "
        "{new} ordered for the first time."
    ),
    "flows.biggest": "The biggest move toward churn: {from_stage} \u2192 {to_stage}, {count}.",
    "stage.new": "New",
    "chart.flows.title": "Customers by stage at week start (rows) and end (columns)",
    "chart.flows.x": "Stage at week end",
    "chart.flows.y": "Stage at week start",
    "alt.flows": "Chart: customers moving between churn stages this week",
    "section.hot_spots": "Where churn grew",
    "hot.caption": "Share of each group's customers in the churned stage, last week and now.",
    "hot.segments": "Customer segments",
    "hot.managers": "Account managers",
    "hot.manager": "Manager {manager}",
    "hot.none": "No group's churned share rose this week.",
    "hot.count": "{now} of {customers}",
    "col.group": "Group",
    "col.last_week": "Last week",
    "col.now": "Now",
    "col.rise": "Rise",
    "col.churned": "Churned",
    "hot.cohort": (
        "Weakest cohort: customers who first ordered in {month} \u2014 {retention} ordered in month "
        "{k}, against {average} for the other cohorts."
    ),
    "section.complaints": "What customers complain about",
    "complaints.total": "{count} complaint {tickets} opened this week.",
    "complaints.none": "No complaints were opened this week.",
    "complaints.sla": "Support missed its response or resolution target on {rate} of tickets (SLA breach rate).",
    "tickets": ("ticket", "tickets"),
    "col.theme": "Subject",
    "col.tickets": "Tickets",
    "section.campaign": "Last call campaign ({campaign})",
    "campaign.summary": (
        "We called {pushed} {customers}: {reached} were reached ({reached_share}), {agreed} agreed to "
        "come back ({agreed_share}) and {converted} ordered again ({conversion} of those called)."
    ),
    "campaign.uplift": (
        "Script {variant} did best: its conversion was {uplift} against customers we deliberately "
        "did not call (likely range {low} to {high})."
    ),
    "campaign.uplift_plain": (
        "Script {variant} did best: its conversion was {uplift} against customers we deliberately did not call."
    ),
    "campaign.cost": "Cost per customer retained: {cost}.",
    "col.variant": "Script",
    "campaign.variant": "Script {variant}",
    "col.pushed": "Called",
    "col.reached": "Reached",
    "col.agreed": "Agreed to come back",
    "col.converted": "Ordered again",
    "col.uplift": "Uplift vs not called",
    "months": (
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ),
}

# Russian sentences are written as "label: number" where a verb would have to agree
# with the number; that is ordinary business Russian and avoids wrong agreement.
RU: Catalog = {
    "title": "Дайджест по клиентам",
    "subject": "Дайджест по клиентам {week}: {headline}",
    "subject.churn": "отток {rate}",
    "subject.churn_change": "отток {rate} ({change})",
    "subject.active": "активных клиентов: {active}",
    "week_range": "Неделя {week}: {start} \u2013 {end}",
    "banner.checks_failed": (
        "Проверки качества данных за эту неделю не пройдены: к цифрам ниже относитесь осторожно."
    ),
    "section.summary": "Коротко и по-человечески",
    "section.kpis": "Неделя в цифрах",
    "section.risk": "Кого мы можем потерять",
    "section.stages": "Где сейчас наши клиенты",
    "section.trend": "Динамика за последние недели",
    "section.cohorts": "Возвращаются ли клиенты? Когорты по месяцам",
    "section.voice": "Голос клиента",
    "col.metric": "Показатель",
    "col.value": "Эта неделя",
    "col.change": "к прошлой неделе",
    "col.level": "Уровень",
    "col.total": "Всего",
    "col.week": "Неделя",
    "col.stage": "Стадия",
    "col.customers": "Клиентов",
    "col.share": "Доля",
    "col.cohort": "Когорта (размер)",
    "tier": "Категория {tier}",
    "kpi.active_customers": "Активные клиенты",
    "kpi.churn_rate": "Отток",
    "kpi.retention_rate": "Удержание",
    "kpi.reactivation_rate": "Реактивация",
    "kpi.new_customers": "Новые клиенты",
    "kpi.churned_customers": "Ушли за неделю",
    "kpi.reactivated_customers": "Вернулись",
    "kpi.revenue": "Выручка",
    "kpi.orders": "Заказы",
    "kpi.arpu": "Выручка на активного клиента",
    "kpi.average_check": "Средний чек",
    "kpi.nps": "Готовность рекомендовать (NPS)",
    "kpi.csi": "Индекс удовлетворённости (CSI)",
    "kpi.survey_responses": "Ответы в опросах",
    "change.none": "без изменений",
    "change.na": "н/д",
    "unit.pp": "п.п.",
    "stage.active": "Активные",
    "stage.churn risk": "Риск оттока",
    "stage.potential churn": "Потенциальный отток",
    "stage.churned": "Ушедшие",
    "stage.no orders": "Ещё без заказов",
    "level.red": "Красный",
    "level.orange": "Оранжевый",
    "level.amber": "Янтарный",
    "level.yellow": "Жёлтый",
    "level.green": "Зелёный",
    "customers": ("клиент", "клиента", "клиентов"),
    "responses": ("ответ", "ответа", "ответов"),
    "orders": ("заказ", "заказа", "заказов"),
    "sentence.active": (
        "Активных клиентов: {active} ({change} к прошлой неделе). За неделю впервые "
        "купили: {new}, вернулись после перерыва: {reactivated}."
    ),
    "sentence.churn": (
        "Перешли в отток: {churned}, это {rate} клиентов, которые были с нами в начале "
        "недели ({change} к прошлой неделе; чем ниже, тем лучше)."
    ),
    "sentence.retention": (
        "Удержание: {rate} клиентов, которые были с нами в начале недели, остались с нами к её концу."
    ),
    "sentence.risk": (
        "На красном и оранжевом уровне риска: {count} {customers}. Это вероятные потери, "
        "им стоит позвонить в первую очередь; из них самых ценных (уровень A или B): {valuable}."
    ),
    "sentence.risk_none": "Клиентов на красном и оранжевом уровне риска на этой неделе нет.",
    "sentence.complaints": (
        "С открытой жалобой из них: {count}. Хорошо решённая жалоба возвращает лояльность."
    ),
    "sentence.revenue": "Выручка: {revenue}, заказов: {orders}, средний чек: {check}.",
    "sentence.nps": "NPS за неделю: {nps} (ответов в опросах: {responses}).",
    "risk.caption": "Клиенты по уровню риска (строки) и категории ценности (столбцы, A — самые ценные).",
    "voice.detractors": "Недовольные клиенты (оценки 0\u20136)",
    "voice.promoters": "Довольные клиенты (оценки 9\u201310)",
    "voice.none": "На этой неделе комментариев нет.",
    "voice.meta": "оценка {score} \u00b7 {channel} \u00b7 {date}",
    "channel.unknown": "канал неизвестен",
    "chart.trend.title": "Активные клиенты и отток",
    "chart.trend.active": "Активные клиенты",
    "chart.trend.churn": "Отток",
    "chart.trend.target": "цель {target}",
    "chart.stages.title": "Клиенты по стадиям оттока",
    "chart.cohort.title": "Доля когорты, купившей снова",
    "chart.cohort.x": "Месяцев после первого заказа",
    "chart.cohort.y": "Месяц первого заказа",
    "alt.trend": "График: активные клиенты и отток по неделям",
    "alt.stages": "График: клиенты по стадиям оттока",
    "alt.cohort": "Тепловая карта: удержание когорт по месяцам",
    "footer.freshness": "Данные загружены по {when}.",
    "footer.freshness_unknown": "Время загрузки данных неизвестно.",
    "footer.as_of": "Стадии клиентов на {date}.",
    "footer.checks_passed": "Проверки качества: пройдены.",
    "footer.checks_passed_detail": (
        "Проверки качества: пройдены (проверок: {checks}, предупреждений: {warnings})."
    ),
    "footer.checks_failed": "Проверки качества: НЕ ПРОЙДЕНЫ.",
    "footer.checks_unknown": "Проверки качества: нет сведений.",
    "footer.about": (
        "Отправлено автоматически конвейером удержания раз в неделю. "
        "Контактные данные клиентов в письмо не попадают."
    ),
    "headline.target": "Отток {rate} при цели {target}",
    "headline.progress.above": "осталось {gap}",
    "headline.progress.met": "цель достигнута",
    "subject.target": "цель {target}",
    "sentence.target.above": (
        "Наш ключевой результат — недельный отток не выше {target}: пока мы выше цели на {gap}{since}."
    ),
    "sentence.target.met": (
        "Наш ключевой результат — недельный отток не выше {target}: на этой неделе цель достигнута{since}."
    ),
    "sentence.target.since": " (на неделе {week} было {first})",
    "section.flows": "Как клиенты переходили между стадиями за неделю",
    "flows.caption": "Строки: стадия в начале недели; столбцы: стадия в конце.",
    "flows.worse": (
        "Ближе к оттоку: {worse}, обратно к активным: {better}, впервые купили: {new}."
    ),
    "flows.biggest": "Самый большой переход к оттоку: {from_stage} \u2192 {to_stage}, {count}.",
    "stage.new": "Новые",
    "chart.flows.title": "Клиенты по стадии в начале (строки) и в конце недели (столбцы)",
    "chart.flows.x": "Стадия в конце недели",
    "chart.flows.y": "Стадия в начале недели",
    "alt.flows": "График: переходы клиентов между стадиями оттока за неделю",
    "section.hot_spots": "Где вырос отток",
    "hot.caption": "Доля ушедших клиентов в группе: неделю назад и сейчас.",
    "hot.segments": "Сегменты клиентов",
    "hot.managers": "Менеджеры",
    "hot.manager": "Менеджер {manager}",
    "hot.none": "Ни в одной группе доля ушедших не выросла.",
    "hot.count": "{now} из {customers}",
    "col.group": "Группа",
    "col.last_week": "Неделю назад",
    "col.now": "Сейчас",
    "col.rise": "Рост",
    "col.churned": "Ушли",
    "hot.cohort": (
        "Самая слабая когорта: клиенты с первым заказом в {month} — в месяц {k} купили снова {retention}, "
        "у остальных когорт в среднем {average}."
    ),
    "section.complaints": "На что жалуются клиенты",
    "complaints.total": "Жалоб за неделю: {count}.",
    "complaints.none": "Жалоб за неделю не было.",
    "complaints.sla": "Поддержка не уложилась в норматив ответа или решения по {rate} обращений (нарушения SLA).",
    "tickets": ("обращение", "обращения", "обращений"),
    "col.theme": "Тема",
    "col.tickets": "Обращений",
    "section.campaign": "Последняя кампания обзвона ({campaign})",
    "campaign.summary": (
        "Обзвонили клиентов: {pushed}; дозвонились: {reached} ({reached_share}); согласились вернуться: "
        "{agreed} ({agreed_share}); сделали заказ: {converted} ({conversion} от обзвоненных)."
    ),
    "campaign.uplift": (
        "Лучший скрипт — {variant}: конверсия {uplift} к клиентам, которым мы намеренно "
        "не звонили (вероятный диапазон от {low} до {high})."
    ),
    "campaign.uplift_plain": (
        "Лучший скрипт — {variant}: конверсия {uplift} к клиентам, которым мы намеренно не звонили."
    ),
    "campaign.cost": "Стоимость удержания одного клиента: {cost}.",
    "col.variant": "Скрипт",
    "campaign.variant": "Скрипт {variant}",
    "col.pushed": "Звонили",
    "col.reached": "Дозвонились",
    "col.agreed": "Согласились вернуться",
    "col.converted": "Купили снова",
    "col.uplift": "Прирост к не обзвоненным",
    "months": (
        "января", "февраля", "марта", "апреля", "мая", "июня",
        "июля", "августа", "сентября", "октября", "ноября", "декабря",
    ),
}  # fmt: skip

CATALOGS: dict[str, Catalog] = {"en": EN, "ru": RU}

# Symbols readers recognise at a glance; any other ISO 4217 code is written as the code.
CURRENCY_SYMBOLS = {"EUR": "\u20ac", "USD": "$", "GBP": "\u00a3", "RUB": "\u20bd", "JPY": "\u00a5"}


def _plural_index(language: str, n: int) -> int:
    """CLDR cardinal plural category of an integer, as an index into the catalog's forms."""
    n = abs(n)
    if language == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return 0
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return 1
        return 2
    return 0 if n == 1 else 1


@dataclass(frozen=True)
class Language:
    """A catalog plus the number and date conventions of one language."""

    code: str
    catalog: Catalog
    thousands: str
    decimal: str
    percent_sign: str  # Russian writes a (no-break) space before %

    def text(self, key: str, **values: Any) -> str:
        template = self.catalog[key]
        if not isinstance(template, str):
            raise TypeError(f"catalog key {key!r} holds plural forms; use plural()")
        return template.format(**values)

    def plural(self, key: str, n: int) -> str:
        forms = self.catalog[key]
        if isinstance(forms, str):
            raise TypeError(f"catalog key {key!r} is not a set of plural forms")
        return forms[_plural_index(self.code, n)]

    def number(self, value: float | int, decimals: int = 0, *, signed: bool = False) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return self.text("change.na")
        raw = f"{value:{'+' if signed else ''},.{decimals}f}"
        return raw.replace(",", "\0").replace(".", self.decimal).replace("\0", self.thousands)

    def percent(self, fraction: float, decimals: int = 1, *, signed: bool = False) -> str:
        return self.number(fraction * 100, decimals, signed=signed) + self.percent_sign

    def money(self, value: float, decimals: int, currency: str) -> str:
        """An amount with its currency: English puts the symbol first, Russian after."""
        code = currency.strip().upper()
        symbol = CURRENCY_SYMBOLS.get(code, code)
        amount = self.number(value, decimals)
        if self.code == "en":
            return f"{symbol}{amount}" if len(symbol) == 1 else f"{symbol}{NBSP}{amount}"
        return f"{amount}{NBSP}{symbol}"

    def points(self, value: float, decimals: int = 1, *, signed: bool = False) -> str:
        """Percentage points: the honest unit for the change of a rate."""
        return f"{self.number(value, decimals, signed=signed)}{NBSP}{self.text('unit.pp')}"

    def date(self, value: date) -> str:
        months = self.catalog["months"]
        return f"{value.day}{NBSP}{months[value.month - 1]}{NBSP}{value.year}"

    def moment(self, value: datetime) -> str:
        """A timestamp in UTC: the digest goes company-wide, across timezones."""
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return f"{self.date(utc.date())} {utc:%H:%M} UTC"


_LANGUAGES = {
    "en": Language("en", EN, thousands=",", decimal=".", percent_sign="%"),
    "ru": Language("ru", RU, thousands=NBSP, decimal=",", percent_sign=f"{NBSP}%"),
}


def get_language(code: str) -> Language:
    try:
        return _LANGUAGES[code.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unsupported digest language {code!r}; supported: {', '.join(SUPPORTED_LANGUAGES)}"
        ) from None
