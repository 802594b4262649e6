"""The console's message catalogue: one dict per language, keyed by message id.

Chinese is the console's language (gateway/people/language.py picks it by default);
English is kept for operators and tests. Vocabulary of the API (actions, states,
categories, roles, outcomes) is translated under ``<kind>.<code>``; an English entry
missing there shows the API's own code, which is what English users read in the API.
"""

from __future__ import annotations

_ZH = {
    "app.title": "执行查控网关",
    "nav.events": "审计事件", "nav.anomalies": "异常", "nav.charts": "图表",
    "nav.cases": "案件", "nav.follow_up": "待办事项", "nav.approvals": "待审批",
    "logout": "退出登录", "switch_lang": "English",
    "who": "{sub}（{role}，法院 {court}）", "who.no_court": "{sub}（{role}）",
    "role.court_officer": "执行员", "role.approver": "审批法官", "role.auditor": "审计员", "role.admin": "管理员",
    "times_note": "时间均为北京时间",
    # cases
    "cases.title": "本院案件", "cases.none": "本院尚无登记的案件。",
    "col.case_number": "案号", "col.debtors": "被执行人", "col.amount_owed": "执行标的（元）",
    "col.requests": "查控请求", "col.registered": "登记时间", "col.role": "身份", "col.name": "名称",
    "col.kind": "类型", "col.id_number": "证件号码（脱敏）", "col.action": "类型", "col.state": "状态",
    "col.progress": "进度", "col.created": "提交时间", "col.proposer": "提出人", "col.category": "财产类别",
    "col.agency": "机构", "col.identifier": "账号/编号", "col.description": "说明", "col.balance": "余额（元）",
    "col.controls": "控制措施", "col.pick": "选择", "col.until": "到期日", "col.days_left": "剩余天数",
    "col.amount": "金额（元）", "col.due": "期限", "col.detail": "说明", "col.reported_at": "余额报告时间",
    "col.request": "请求",
    "case.title": "案件 {case}", "case.parties": "当事人", "case.requests": "查控请求", "case.no_requests": "尚无请求。",
    "case.controls": "在控措施", "case.no_controls": "尚无在控措施。",
    "progress": "{answered} / {agencies} 家机构已答复",
    "party.debtor": "被执行人", "party.creditor": "申请执行人",
    "kind.person": "自然人", "kind.organization": "单位",
    "report.title": "财产报告：{name}", "report.as_of": "截至 {time}", "report.none": "尚未查到财产。",
    "report.exempt": "豁免", "report.cash_found": "可冻结资金合计（元）", "report.cash_exempt": "豁免账户资金（另列，元）",
    "report.cash_frozen": "已冻结（元）", "report.ratio": "现金可回收比例", "report.amount_owed": "执行标的（元）",
    "report.gaps": "尚未答复的机构", "report.csv": "下载 CSV", "report.pdf": "下载 PDF",
    "freeze.title": "勾选账户，提出冻结", "freeze.cap": "冻结上限（执行标的减已冻结，元）",
    "freeze.picked": "已选账户余额合计（元）", "freeze.amount": "冻结金额（元）",
    "freeze.basis_kind": "法律文书类型", "freeze.basis_number": "法律文书编号", "freeze.document": "法律文书（PDF）",
    "freeze.submit": "提交冻结申请", "freeze.no_accounts": "没有可冻结的账户。",
    "freeze.proposed": "冻结申请已提交（请求 {id}），等待审批法官审批。",
    "freeze.pick_one": "请至少勾选一个账户", "freeze.over_cap": "超过冻结上限",
    "basis.assistance_notice": "协助执行通知书", "basis.ruling": "执行裁定书", "basis.decision": "决定书",
    "basis.enforcement_notice": "执行通知书",
    "follow.title": "待办事项", "follow.none": "无。",
    "follow.lapsing": "即将到期，需续行控制", "follow.uncontrolled": "已查到但未控制的资金",
    "follow.partly_covered": "部分冻结", "follow.deduct_unconfirmed": "扣划待确认到账", "follow.deduct_mismatch": "扣划金额不符",
    # approvals
    "queue.title": "待审批的控制措施", "queue.none": "没有待审批的请求。", "queue.debtor": "被执行人",
    "queue.amount": "申请金额（元）", "queue.targets": "目标账户", "queue.basis": "法律依据", "queue.documents": "法律文书",
    "queue.proposer": "提出人", "queue.other_controls": "该被执行人在本院的其他控制措施", "queue.none_other": "无其他控制措施。",
    "queue.reason": "理由（驳回时必填）", "queue.approve": "批准", "queue.reject": "驳回", "queue.submitted": "提交时间",
    "queue.case": "案号",
    "decided.approved": "已批准请求 {id}，各机构的控制指令已发出。", "decided.rejected": "已驳回请求 {id}。",
    "error.self_approval": "不能审批本人提出的控制措施：控制措施须由提出人以外的另一名审批人审批。",
    "error.reason_required": "驳回须说明理由。",
    "error.csrf": "表单已失效（CSRF 校验未通过），请刷新页面后重新提交。",
    "error.role": "角色 {role} 无权打开此页面（需要：{needed}）。",
    "error.prefix": "未能完成：",
    # auditor pages
    "events.title": "审计事件", "trail.title": "请求 {id} 的审计轨迹", "trail.deliveries": "投递",
    "trail.events": "事件（{n}）", "trail.delivery": "投递编号", "trail.transport": "传输方式", "trail.attempts": "尝试次数",
    "trail.last_error": "最近错误",
    # vocabulary
    "action.inquiry": "查询", "action.freeze": "冻结", "action.renew": "续冻", "action.unfreeze": "解冻",
    "action.deduct": "扣划", "action.seal": "查封", "action.release": "解封", "action.watch": "监控",
    "action.valuation": "评估",
    "state.accepted": "已受理", "state.awaiting_approval": "待审批", "state.in_progress": "办理中",
    "state.completed": "已完成", "state.partially_completed": "部分完成", "state.failed": "失败", "state.rejected": "已驳回",
    "state.in_force": "在控", "state.partly": "部分冻结", "state.queued": "轮候", "state.watching": "监控中",
    "state.lapsed": "已到期", "state.deducted": "已扣划", "state.received": "已到账", "state.released": "已解除",
    "category.deposit": "存款", "category.wealth_product": "理财产品", "category.securities": "证券",
    "category.real_estate": "不动产", "category.vehicle": "车辆", "category.equity": "股权", "category.enterprise": "企业登记",
    "category.tax": "税务", "category.identity": "身份信息", "category.whereabouts": "下落", "category.social_security": "社保",
    "category.provident_fund": "公积金", "category.internet_payment": "网络支付",
}

_EN = {
    "app.title": "Enforcement gateway",
    "nav.events": "Events", "nav.anomalies": "Anomalies", "nav.charts": "Charts",
    "nav.cases": "Cases", "nav.follow_up": "Follow-up", "nav.approvals": "Approvals",
    "logout": "Log out", "switch_lang": "中文",
    "who": "{sub} ({role}, court {court})", "who.no_court": "{sub} ({role})",
    "role.court_officer": "court_officer", "role.approver": "approver", "role.auditor": "auditor", "role.admin": "admin",
    "times_note": "times are Beijing time",
    "cases.title": "Cases of this court", "cases.none": "No case is registered for this court.",
    "col.case_number": "Case number", "col.debtors": "Debtors", "col.amount_owed": "Amount owed (yuan)",
    "col.requests": "Requests", "col.registered": "Registered", "col.role": "Role", "col.name": "Name",
    "col.kind": "Kind", "col.id_number": "ID number (masked)", "col.action": "Action", "col.state": "State",
    "col.progress": "Progress", "col.created": "Submitted", "col.proposer": "Proposer", "col.category": "Category",
    "col.agency": "Agency", "col.identifier": "Account / number", "col.description": "Description",
    "col.balance": "Balance (yuan)", "col.controls": "Controls", "col.pick": "Pick", "col.until": "Expires",
    "col.days_left": "Days left", "col.amount": "Amount (yuan)", "col.due": "Due", "col.detail": "Detail",
    "col.reported_at": "Balance reported", "col.request": "Request",
    "case.title": "Case {case}", "case.parties": "Parties", "case.requests": "Requests", "case.no_requests": "No requests yet.",
    "case.controls": "Controls in force", "case.no_controls": "No controls in force.",
    "progress": "{answered} of {agencies} agencies answered",
    "party.debtor": "debtor", "party.creditor": "creditor", "kind.person": "person", "kind.organization": "organization",
    "report.title": "Asset report: {name}", "report.as_of": "as of {time}", "report.none": "No assets found yet.",
    "report.exempt": "exempt", "report.cash_found": "Cash found, freezable (yuan)",
    "report.cash_exempt": "Cash in exempt accounts, apart (yuan)", "report.cash_frozen": "Already frozen (yuan)",
    "report.ratio": "Cash-recoverable ratio", "report.amount_owed": "Amount owed (yuan)",
    "report.gaps": "Agencies not answered", "report.csv": "Download CSV", "report.pdf": "Download PDF",
    "freeze.title": "Propose a freeze of the ticked accounts", "freeze.cap": "Cap (amount owed less frozen, yuan)",
    "freeze.picked": "Balance of the ticked accounts (yuan)", "freeze.amount": "Amount to freeze (yuan)",
    "freeze.basis_kind": "Legal document kind", "freeze.basis_number": "Legal document number",
    "freeze.document": "Legal document (PDF)", "freeze.submit": "Propose the freeze",
    "freeze.no_accounts": "No account can be frozen.",
    "freeze.proposed": "Freeze proposed (request {id}); it waits for a judge's approval.",
    "freeze.pick_one": "tick at least one account", "freeze.over_cap": "above the cap",
    "basis.assistance_notice": "assistance notice", "basis.ruling": "ruling", "basis.decision": "decision",
    "basis.enforcement_notice": "enforcement notice",
    "follow.title": "Follow-up", "follow.none": "None.",
    "follow.lapsing": "Due renewals", "follow.uncontrolled": "Found but not controlled",
    "follow.partly_covered": "Partly covered freezes", "follow.deduct_unconfirmed": "Deducts not confirmed",
    "follow.deduct_mismatch": "Deducts that do not match",
    "queue.title": "Controls awaiting approval", "queue.none": "Nothing awaits approval.", "queue.debtor": "Debtor",
    "queue.amount": "Amount asked (yuan)", "queue.targets": "Target accounts", "queue.basis": "Legal basis",
    "queue.documents": "Legal documents", "queue.proposer": "Proposer",
    "queue.other_controls": "The debtor's other controls at this court", "queue.none_other": "No other controls.",
    "queue.reason": "Reason (required to reject)", "queue.approve": "Approve", "queue.reject": "Reject",
    "queue.submitted": "Submitted", "queue.case": "Case",
    "decided.approved": "Request {id} approved; its control orders are on their way to the agencies.",
    "decided.rejected": "Request {id} rejected.",
    "error.self_approval": "You may not approve a control you proposed: a second approver decides it.",
    "error.reason_required": "A rejection says why.",
    "error.csrf": "This form has expired (CSRF check failed): reload the page and send it again.",
    "error.role": "role {role} may not open this page (needs {needed})",
    "error.prefix": "Not done: ",
    "events.title": "Events", "trail.title": "Trail of request {id}", "trail.deliveries": "Deliveries",
    "trail.events": "Events ({n})", "trail.delivery": "delivery", "trail.transport": "transport",
    "trail.attempts": "attempts", "trail.last_error": "last error",
}

MESSAGES: dict[str, dict[str, str]] = {"zh": _ZH, "en": _EN}


def vocabulary(kind: str, code: str | None, language: str) -> str:
    """An API code (action, state, category...) in words: Chinese words, or the code itself in English."""
    if not code:
        return "—"
    if language == "zh":
        return _ZH.get(f"{kind}.{code}", code)
    return _EN.get(f"{kind}.{code}", code)
