// The renda-mesh node console. Plain JavaScript, no build step, no external resources: every
// call goes to this node's own /api, so a township console works while the node is offline.
'use strict';

// ---------- small helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'cls') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v); else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
function fmtTime(ms) {
  if (!ms) return '从未';
  const d = new Date(Number(ms));
  const p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
// Dates travel as renda.types.v1.Date messages; a form's date input holds "YYYY-MM-DD".
function wireDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || '');
  return m ? { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) } : undefined;
}
function fmtDate(d) { const p = n => String(n).padStart(2, '0'); return d && d.year ? `${d.year}-${p(d.month)}-${p(d.day)}` : ''; }
function today() { const d = new Date(); const p = n => String(n).padStart(2, '0'); return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`; }

async function api(path, body) {
  const opts = body === undefined ? { credentials: 'same-origin' }
    : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  let res;
  try { res = await fetch(path, opts); } catch (e) {
    return { error: { field: '', message_zh: '无法连接本节点' } };
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    if (res.status === 401 && !path.endsWith('/login')) { S.me = null; go('#/login'); }
    return { error: (data && data.error) || { field: '', message_zh: `请求失败 (${res.status})` } };
  }
  return { data };
}
const rpc = (service, method, req) => api(`/api/rpc/${service}/${method}`, req || {});

// Replaces an element's children, leaving out the empty ones (null, undefined, false).
function put(el, ...kids) { el.replaceChildren(...kids.flat().filter(k => k !== null && k !== undefined && k !== false)); }

// ---------- the words of the domain ----------
const LEVEL_ZH = { city: '市', county: '区(市)县', township: '乡镇(街道)', village: '村(社区)' };
const ROLE_ZH = { city_office: '市人大常委会办公室', county_office: '区(市)县人大常委会办公室', township_clerk: '乡镇(街道)人大工作人员', read_only: '只读用户' };
// Enum tables: the proto value names the API takes and answers (proto3 JSON), and their words.
const DEPUTY_LEVELS = [['DEPUTY_LEVEL_NATIONAL', '全国'], ['DEPUTY_LEVEL_PROVINCIAL', '省'], ['DEPUTY_LEVEL_CITY', '市'], ['DEPUTY_LEVEL_COUNTY', '县'], ['DEPUTY_LEVEL_TOWNSHIP', '乡']];
const GENDERS = [['GENDER_MALE', '男'], ['GENDER_FEMALE', '女']];
const DEPUTY_STATUS = [['DEPUTY_STATUS_SERVING', '在任'], ['DEPUTY_STATUS_TERMINATED', '终止']];
// The record page edits stored values, which hold the codes.
const DEPUTY_STATUS_CODES = [['serving', '在任'], ['terminated', '终止']];
// A stored code (`township`, `male`) as the name of its enum value (`DEPUTY_LEVEL_TOWNSHIP`).
const enumName = (prefix, code) => prefix + String(code).toUpperCase();
const STATION_KINDS = [['home', '代表之家'], ['station', '代表联络站'], ['point', '联络点(室)'], ['online', '网上代表联络站'], ['legislative_contact_point', '基层立法联系点']];
const CHECKLIST = [['premises', '有场所'], ['information', '有信息'], ['rules', '有制度'], ['plan', '有计划'], ['files', '有档案'], ['materials', '有资料'], ['equipment', '有设备'], ['online_platform', '有网络平台'],
  ['deputy_info_published', '代表信息公开'], ['reception_plan_published', '接待计划公开'], ['work_status_published', '工作情况公开'], ['operation_status_published', '运行情况公开']];
const ACTIVITY_KINDS = [['ACTIVITY_KIND_RESEARCH', '调研'], ['ACTIVITY_KIND_INSPECTION', '视察'], ['ACTIVITY_KIND_LAW_ENFORCEMENT_INSPECTION', '执法检查'], ['ACTIVITY_KIND_SPECIAL_INQUIRY', '专题询问'], ['ACTIVITY_KIND_TRAINING', '培训'], ['ACTIVITY_KIND_PUBLICITY', '宣讲'], ['ACTIVITY_KIND_RECEIVING_VOTERS', '接待选民'], ['ACTIVITY_KIND_GROUP_ACTIVITY', '代表小组活动']];
const OPINION_SOURCES = [['station', '联络站收集'], ['qr_code', '扫码反映'], ['visit', '走访收集'], ['online', '网上反映']];
const ROUTES = [['answered_on_site', '现场答复'], ['transferred_to_township', '转交乡镇(街道)办理'], ['assigned_to_department', '交办部门落实'], ['escalated_upward', '逐级向上反映']];
const SUGGESTION_KINDS = [['SUGGESTION_KIND_SUGGESTION', '建议'], ['SUGGESTION_KIND_MOTION', '议案']];
const CHOICES = [['CHOICE_FOR', '赞成'], ['CHOICE_AGAINST', '反对'], ['CHOICE_ABSTAIN', '弃权']];
const KIND_ZH = { deputy: '人大代表', station: '代表联络站', activity: '履职活动', opinion: '社情民意', suggestion: '议案建议', project: '民生实事项目', deputy_group: '代表小组', handling_unit: '承办单位', org_unit: '组织单位', congress_session: '人代会', report_back: '述职', evaluation: '代表评价', appraisal: '工作评议' };
const FIELD_ZH = { name: '姓名/名称', levels: '代表层级', constituency: '选区', term: '届次', gender: '性别', ethnicity: '民族', sector: '职业/界别', phone: '联系电话', status: '状态', qr_token: '二维码', id_card_masked: '身份证号(脱敏)',
  org: '所属单位', kind: '类型', address: '地址', title: '标题', content: '内容', source: '来源', venue: '地点', starts_at: '开始时间', year: '年度', summary: '概要', budget_fen: '预算(分)', body: '正文', deleted: '已删除' };
for (const [k, v] of CHECKLIST) FIELD_ZH[k] = v;
const zh = (list, key) => (list.find(([k]) => k === key) || [key, key])[1];
// renda.suggestion.v1.SuggestionStatus and ReplyCategory, as the API names them.
const SUGGESTION_STATUS_ZH = { SUGGESTION_STATUS_DRAFTED: '草稿', SUGGESTION_STATUS_SUBMITTED: '已提出', SUGGESTION_STATUS_REVISION_REQUESTED: '退回修改', SUGGESTION_STATUS_REVIEW_PASSED: '审核通过', SUGGESTION_STATUS_RETURNED: '已退办', SUGGESTION_STATUS_ASSIGNED: '已交办',
  SUGGESTION_STATUS_REPLIED: '已答复', SUGGESTION_STATUS_EVALUATED: '已测评', SUGGESTION_STATUS_SECOND_ROUND: '二次交办', SUGGESTION_STATUS_CLOSED: '已办结', SUGGESTION_STATUS_WITHDRAWN: '已撤回', SUGGESTION_STATUS_MERGED: '已并案' };
const replyCategory = c => (c && c !== 'REPLY_CATEGORY_UNSPECIFIED' ? c.replace('REPLY_CATEGORY_', '') + '类' : '');
// The station and opinion vocabularies as their services' enums name them ("STATION_KIND_HOME");
// the lists above hold the stored codes ("home"), which record pages, conflicts and reports show.
const asEnum = (prefix, list) => list.map(([k, l]) => [prefix + k.toUpperCase(), l]);
const STATION_KIND_ENUM = asEnum('STATION_KIND_', STATION_KINDS);
const CHECKLIST_ENUM = asEnum('CHECKLIST_ITEM_', CHECKLIST);
const OPINION_SOURCE_ENUM = asEnum('OPINION_SOURCE_', OPINION_SOURCES);
const OPINION_ROUTE_ENUM = asEnum('OPINION_ROUTE_', ROUTES);
const OPINION_STATUS_ZH = { OPINION_STATUS_OPEN: '待办理', OPINION_STATUS_HANDLING: '办理中', OPINION_STATUS_RESOLVED: '已办结', OPINION_STATUS_CLOSED: '已回访' };
const STATUS_ZH = { serving: '在任', terminated: '终止', open: '待办理', handling: '办理中', resolved: '已办结', closed: '已回访', drafted: '草稿', submitted: '已提出', revision_requested: '退回修改', review_passed: '审核通过', returned: '已退办', assigned: '已交办', replied: '已答复', evaluated: '已测评', second_round: '二次交办', withdrawn: '已撤回', merged: '已并案' };

// ---------- state ----------
const S = { me: null, orgs: {}, status: null };
function orgName(code) { return S.orgs[code] || code; }
const level = () => (S.me && S.me.node.level) || 'township';

// ---------- header ----------
function renderHeader() {
  const nav = document.getElementById('nav');
  nav.replaceChildren();
  const who = document.getElementById('who');
  who.replaceChildren();
  document.getElementById('node-name').textContent = S.me ? `${orgName(S.me.node.org_code)}（${LEVEL_ZH[level()] || ''}节点）` : '';
  if (!S.me) { document.getElementById('sync').replaceChildren(); return; }
  const links = [];
  if (level() === 'township') links.push(['#/entry/deputy', '数据录入'], ['#/dash', '数据看板']);
  if (level() === 'county') links.push(['#/county', '同步与冲突'], ['#/dash', '数据看板'], ['#/dispatch', '工作下派'], ['#/entry/deputy', '数据录入']);
  if (level() === 'city') links.push(['#/dash', '数据看板'], ['#/county', '同步与冲突']);
  const here = location.hash.split('?')[0];
  for (const [href, label] of links) nav.append(h('a', { href, cls: here.startsWith(href.split('/').slice(0, 2).join('/')) ? 'active' : '' }, label));
  who.append(`${S.me.display_name || S.me.login || '用户' + S.me.user} · ${ROLE_ZH[S.me.role] || S.me.role}`,
    h('button', { cls: 'plain', id: 'logout', onclick: async () => { await api('/api/logout', {}); S.me = null; go('#/login'); } }, '退出'));
}

async function refreshSync() {
  if (!S.me) return;
  const { data } = await api('/api/status');
  if (!data) return;
  S.status = data;
  const n = data.node;
  const el = document.getElementById('sync');
  el.replaceChildren();
  if (n.level === 'city') {
    el.append(h('span', { cls: 'dot on' }), `市级节点 · 下级节点 ${data.below.length} 个`);
    return;
  }
  const cls = n.offline ? 'off' : (n.last_error && n.last_error_ms > n.last_sync_ms ? 'err' : (n.online ? 'on' : 'off'));
  const state = n.offline ? '离线' : (cls === 'err' ? '同步出错' : (n.online ? '在线' : '未连接'));
  el.append(h('span', { cls: 'dot ' + cls }), h('b', { id: 'sync-state' }, state),
    ` · 最近同步 ${fmtTime(n.last_sync_ms)} · 待上传 ${n.pending_up} · 待接收 ${n.pending_down}`,
    n.last_error ? h('span', { cls: 'muted', title: n.last_error }, ' · 最近错误：' + n.last_error.slice(0, 40)) : '');
}

// ---------- forms ----------
// A form declares its fields; the API validates and its refusal is shown beside the field it
// names. Values are kept while the page lives and in sessionStorage as a draft, so nothing typed
// is lost on an error or when the clerk looks at another page.
const refCache = {};
async function loadRef(src) {
  const org = src.org === 'me' ? S.me.org_code : '';
  const { data, error } = await rpc(src.service, src.method, Object.assign({ org, limit: 1000 }, src.req || {}));
  if (error) return [];
  return (data[src.key] || []).filter(src.filter || (() => true)).map(x => [x.id, src.label(x), x]);
}
const REF = {
  deputy: { service: 'renda.deputy.v1.Deputies', method: 'ListDeputies', key: 'deputies', label: d => `${d.name}（${d.constituency || orgName(d.org)}）` },
  station: { service: 'renda.station.v1.Stations', method: 'ListStations', key: 'stations', label: x => x.name },
  activity: { service: 'renda.activity.v1.Activities', method: 'ListActivities', key: 'activities', label: a => `${a.title}（${zh(ACTIVITY_KINDS, a.kind)}）` },
  project: { service: 'renda.project.v1.Projects', method: 'ListProjects', key: 'projects', label: p => `${p.title}（${p.stage_zh || p.stage}）` },
  suggestion: { service: 'renda.suggestion.v1.Suggestions', method: 'ListSuggestions', key: 'suggestions', label: x => `${x.title}（${SUGGESTION_STATUS_ZH[x.status] || x.status}）` },
  unit: { service: 'renda.suggestion.v1.Suggestions', method: 'ListHandlingUnits', key: 'units', label: u => `${u.name}（${orgName(u.org)}）` },
};

function fieldInput(f, value) {
  const name = f.name;
  switch (f.type) {
    case 'textarea': return h('textarea', { name, id: 'f-' + name }, value || '');
    case 'select': case 'ref': {
      const sel = h('select', { name, id: 'f-' + name }, h('option', { value: '' }, f.placeholder || '请选择'));
      for (const [k, label] of f.options || []) sel.append(h('option', { value: k, selected: k === value }, label));
      return sel;
    }
    case 'checks': case 'refs': {
      const box = h('div', { cls: 'checks', id: 'f-' + name, 'data-name': name });
      for (const [k, label] of f.options || []) box.append(h('label', {}, h('input', { type: 'checkbox', name, value: k, checked: (value || []).includes(k) }), ' ', label));
      if (!(f.options || []).length) box.append(h('span', { cls: 'muted' }, '（暂无可选项）'));
      return box;
    }
    case 'bool': return h('label', {}, h('input', { type: 'checkbox', name, id: 'f-' + name, checked: !!value }), ' ', f.text || '');
    default: return h('input', { type: f.type || 'text', name, id: 'f-' + name, value: value === undefined ? '' : value, step: f.step });
  }
}

function readForm(form, fields) {
  const v = {};
  for (const f of fields) {
    if (f.type === 'checks' || f.type === 'refs') v[f.name] = [...form.querySelectorAll(`input[name="${f.name}"]:checked`)].map(i => i.value);
    else if (f.type === 'bool') v[f.name] = form.querySelector(`[name="${f.name}"]`).checked;
    else v[f.name] = form.querySelector(`[name="${f.name}"]`).value;
  }
  return v;
}
const num = x => (x === '' || x === undefined || x === null ? undefined : Number(x));
// The form's values as the API takes them: date inputs become Date messages; a select left
// unchosen is left out (an enum field cannot read '', and absent is what the API refuses by name).
function wireValues(v, fields) {
  const out = Object.assign({}, v);
  for (const f of fields) if (f.type === 'date') out[f.name] = wireDate(v[f.name]);
  for (const f of fields) if (f.type === 'select' && out[f.name] === '') delete out[f.name];
  return out;
}

// Renders a form; `onSaved(result)` runs after a successful call.
async function buildForm(spec, onSaved) {
  const draftKey = 'draft:' + spec.id;
  let draft = {};
  try { draft = JSON.parse(sessionStorage.getItem(draftKey) || '{}'); } catch (e) { draft = {}; }
  const values = Object.assign({}, typeof spec.defaults === 'function' ? spec.defaults() : (spec.defaults || {}), draft);
  for (const f of spec.fields) if (f.ref) f.options = (await loadRef(f.ref)).map(([k, l]) => [k, l]);
  const form = h('form', { id: 'form-' + spec.id, novalidate: true, autocomplete: 'off' });
  const status = h('div', { cls: 'form-status' });
  for (const f of spec.fields) {
    form.append(h('div', { cls: 'row', 'data-field': f.name },
      h('label', { cls: 'lbl', for: 'f-' + f.name }, f.label), fieldInput(f, values[f.name]),
      f.hint ? h('div', { cls: 'muted' }, f.hint) : null,
      h('div', { cls: 'field-error', id: 'err-' + f.name })));
  }
  const button = h('button', { type: 'submit', id: 'save-' + spec.id }, spec.submit || '保存');
  form.append(status, button);
  form.addEventListener('input', () => sessionStorage.setItem(draftKey, JSON.stringify(readForm(form, spec.fields))));
  if (spec.onChange) form.addEventListener('change', e => spec.onChange(e, form));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('.has-error')) el.classList.remove('has-error');
    status.replaceChildren();
    button.disabled = true;
    const v = readForm(form, spec.fields);
    const result = spec.call ? await spec.call(v) : await rpc(spec.service, spec.method, spec.build(wireValues(v, spec.fields)));
    button.disabled = false;
    if (result.error) {
      const err = result.error;
      const field = spec.errorField ? spec.errorField(err.field) : err.field;
      const row = field && form.querySelector(`.row[data-field="${field}"]`);
      if (row) { row.classList.add('has-error'); row.querySelector('.field-error').textContent = err.message_zh; }
      else status.append(h('div', { cls: 'form-error', id: 'form-error' }, err.message_zh));
      return;
    }
    sessionStorage.removeItem(draftKey);
    form.reset();
    if (spec.defaults) {
      const d = typeof spec.defaults === 'function' ? spec.defaults() : spec.defaults;
      for (const [k, val] of Object.entries(d)) { const el = form.querySelector(`[name="${k}"]`); if (el && el.type !== 'checkbox') el.value = val; }
    }
    status.append(h('div', { cls: 'ok-msg', id: 'ok-msg' }, spec.saved || '已保存'));
    if (onSaved) onSaved(result.data);
  });
  return h('div', { cls: 'card' }, h('h2', {}, spec.title), form);
}

// ---------- township data entry ----------
const nowMs = () => Date.now();
const ENTRY = {
  deputy: {
    id: 'deputy', title: '登记人大代表', nav: '人大代表',
    fields: [
      { name: 'name', label: '姓名' },
      { name: 'levels', label: '代表层级（可多选）', type: 'checks', options: DEPUTY_LEVELS },
      { name: 'constituency', label: '选区' },
      { name: 'term', label: '届次', type: 'number' },
      { name: 'gender', label: '性别', type: 'select', options: GENDERS },
      { name: 'ethnicity', label: '民族' },
      { name: 'sector', label: '职业/界别' },
      { name: 'phone', label: '联系电话' },
      { name: 'id_card', label: '身份证号', hint: '只保存在本节点，任何报表都不显示' },
      { name: 'status', label: '状态', type: 'select', options: DEPUTY_STATUS },
    ],
    defaults: { status: 'DEPUTY_STATUS_SERVING', ethnicity: '汉族' },
    service: 'renda.deputy.v1.Deputies', method: 'CreateDeputy',
    build: v => ({ org: S.me.org_code, fields: Object.assign({}, v, { term: num(v.term), gender: v.gender || undefined, status: v.status || undefined }) }),
    errorField: f => (f === 'id_card_number' ? 'id_card' : f === 'occupation' ? 'sector' : f),
    list: { ref: REF.deputy, cols: [['name', '姓名'], ['levels', '层级', d => d.levels.map(l => zh(DEPUTY_LEVELS, l)).join('、')], ['constituency', '选区'], ['phone_masked', '电话'], ['status', '状态', d => zh(DEPUTY_STATUS, d.status)]] },
  },
  station: {
    id: 'station', title: '登记代表之家/联络站', nav: '联络站',
    fields: [
      { name: 'name', label: '名称' },
      { name: 'kind', label: '类型', type: 'select', options: STATION_KIND_ENUM },
      { name: 'address', label: '地址' },
      { name: 'checklist', label: '八有四公开（已达到的项目）', type: 'checks', options: CHECKLIST_ENUM },
    ],
    service: 'renda.station.v1.Stations', method: 'CreateStation', build: v => v,
    list: { ref: REF.station, cols: [['name', '名称'], ['kind', '类型', x => zh(STATION_KIND_ENUM, x.kind)], ['has_met', '八有'], ['published_met', '四公开'], ['receptions', '接待次数']] },
  },
  reception: {
    id: 'reception', title: '登记接待（代表进站接待选民）', nav: '接待',
    fields: [
      { name: 'station_id', label: '联络站', type: 'ref', ref: REF.station },
      { name: 'deputy_ids', label: '到站代表', type: 'refs', ref: Object.assign({ org: 'me' }, REF.deputy) },
      { name: 'on', label: '接待日期', type: 'date' },
      { name: 'note', label: '接待情况', type: 'textarea' },
    ],
    defaults: () => ({ on: today() }),
    service: 'renda.station.v1.Stations', method: 'RecordReception', build: v => v,
    list: { ref: REF.station, cols: [['name', '联络站'], ['receptions', '接待次数']] },
  },
  checkin: {
    id: 'checkin', title: '履职活动扫码签到', nav: '签到',
    fields: [
      { name: 'activity_id', label: '履职活动', type: 'ref', ref: REF.activity },
      { name: 'deputy_id', label: '代表', type: 'ref', ref: Object.assign({ org: 'me' }, REF.deputy) },
      { name: 'qr_token', label: '活动二维码口令', hint: '扫码所得；选择活动后自动填入' },
    ],
    onChange: async (e, form) => {
      if (e.target.name !== 'activity_id' || !e.target.value) return;
      const { data } = await rpc('renda.activity.v1.Activities', 'GetActivity', { id: e.target.value });
      if (data) form.querySelector('[name=qr_token]').value = data.qr_token;
    },
    service: 'renda.activity.v1.Activities', method: 'CheckIn', build: v => Object.assign({}, v, { at_ms: nowMs() }),
    list: { ref: REF.activity, cols: [['title', '活动'], ['kind', '类型', a => zh(ACTIVITY_KINDS, a.kind)], ['starts_at_ms', '时间', a => fmtTime(a.starts_at_ms)], ['venue', '地点'], ['participants', '签到', a => a.participants.filter(p => p.participation === 'PARTICIPATION_CHECKED_IN').length + ' / ' + a.participants.length]] },
  },
  opinion: {
    id: 'opinion', title: '登记社情民意', nav: '社情民意',
    fields: [
      { name: 'content', label: '意见建议内容', type: 'textarea' },
      { name: 'source', label: '来源', type: 'select', options: OPINION_SOURCE_ENUM },
      { name: 'station_id', label: '收集站点', type: 'ref', ref: REF.station, placeholder: '（不经站点）' },
    ],
    defaults: { source: 'OPINION_SOURCE_STATION' },
    service: 'renda.opinion.v1.Opinions', method: 'RaiseOpinion', build: v => Object.assign({}, v, { raised_at_ms: nowMs() }),
    list: { ref: { service: 'renda.opinion.v1.Opinions', method: 'ListOpinions', key: 'opinions', label: o => o.content }, cols: [['content', '内容', o => o.content.slice(0, 40)], ['source', '来源', o => zh(OPINION_SOURCE_ENUM, o.source)], ['status', '状态', o => OPINION_STATUS_ZH[o.status] || o.status], ['route', '办理方式', o => o.route && o.route !== 'OPINION_ROUTE_UNSPECIFIED' ? zh(OPINION_ROUTE_ENUM, o.route) : '']] },
  },
  suggestion: {
    id: 'suggestion', title: '提出议案建议', nav: '议案建议',
    fields: [
      { name: 'kind', label: '类别', type: 'select', options: SUGGESTION_KINDS },
      { name: 'title', label: '标题' },
      { name: 'body', label: '内容', type: 'textarea' },
      { name: 'lead_deputy_id', label: '领衔代表', type: 'ref', ref: REF.deputy },
      { name: 'co_signer_ids', label: '附议代表', type: 'refs', ref: REF.deputy },
      { name: 'on', label: '提出日期', type: 'date' },
    ],
    defaults: () => ({ kind: 'SUGGESTION_KIND_SUGGESTION', on: today() }),
    service: 'renda.suggestion.v1.Suggestions', method: 'SubmitSuggestion', build: v => v,
    list: { ref: REF.suggestion, cols: [['title', '标题'], ['kind', '类别', x => zh(SUGGESTION_KINDS, x.kind)], ['status', '状态', x => SUGGESTION_STATUS_ZH[x.status] || x.status], ['category', '答复类别', x => replyCategory(x.category)]] },
  },
  project: {
    id: 'project', title: '征集民生实事项目', nav: '民生实事',
    fields: [
      { name: 'year', label: '年度', type: 'number' },
      { name: 'title', label: '项目名称' },
      { name: 'summary', label: '项目概要', type: 'textarea' },
      { name: 'budget_yuan', label: '估算资金（元）', type: 'number', step: '0.01' },
    ],
    defaults: () => ({ year: new Date().getFullYear() + 1 }),
    service: 'renda.project.v1.Projects', method: 'CreateProject',
    build: v => ({ year: num(v.year), title: v.title, summary: v.summary, budget_fen: v.budget_yuan === '' ? undefined : Math.round(Number(v.budget_yuan) * 100) }),
    errorField: f => (f === 'budget_fen' ? 'budget_yuan' : f),
    list: { ref: REF.project, cols: [['title', '项目'], ['year', '年度'], ['stage', '阶段', p => p.stage_zh || p.stage], ['progress', '进度', p => p.progress + '%']] },
  },
  progress: {
    id: 'progress', title: '报告项目实施进度', nav: '项目进度',
    fields: [
      { name: 'project_id', label: '民生实事项目', type: 'ref', ref: REF.project },
      { name: 'percent', label: '完成进度（%）', type: 'number' },
      { name: 'note', label: '进展情况', type: 'textarea' },
      { name: 'on', label: '报告日期', type: 'date' },
    ],
    defaults: () => ({ on: today() }),
    service: 'renda.project.v1.Projects', method: 'ReportProgress', build: v => Object.assign({}, v, { percent: num(v.percent) }),
    list: { ref: REF.project, cols: [['title', '项目'], ['stage', '阶段', p => p.stage_zh || p.stage], ['progress', '进度', p => p.progress + '%']] },
  },
  vote: {
    id: 'vote', title: '票决：代表投票', nav: '票决',
    fields: [
      { name: 'project_id', label: '候选项目', type: 'ref', ref: REF.project },
      { name: 'deputy_id', label: '代表', type: 'ref', ref: REF.deputy },
      { name: 'choice', label: '表决意见', type: 'select', options: CHOICES },
    ],
    service: 'renda.project.v1.Projects', method: 'CastBallot', build: v => v, saved: '选票已记录',
    list: { ref: REF.project, cols: [['title', '项目'], ['stage', '阶段', p => p.stage_zh || p.stage]] },
  },
};

async function listCard(list, title) {
  const { data, error } = await rpc(list.ref.service, list.ref.method, Object.assign({ org: '', limit: 200 }, list.ref.req || {}));
  const card = h('div', { cls: 'card', id: 'list' }, h('h2', {}, title || '已登记'));
  if (error) { card.append(h('div', { cls: 'form-error' }, error.message_zh)); return card; }
  const rows = data[list.ref.key] || [];
  if (!rows.length) { card.append(h('p', { cls: 'muted' }, '暂无记录')); return card; }
  const table = h('table', {}, h('tr', {}, list.cols.map(([, l]) => h('th', {}, l))));
  for (const r of rows) table.append(h('tr', { cls: 'click', onclick: () => go('#/record/' + r.id) }, list.cols.map(([k, , f]) => h('td', {}, f ? f(r) : (Array.isArray(r[k]) ? r[k].join('、') : r[k])))));
  card.append(table);
  return card;
}

async function viewEntry(kind) {
  const spec = ENTRY[kind] || ENTRY.deputy;
  const main = document.getElementById('main');
  const sub = h('div', { cls: 'subnav' }, Object.entries(ENTRY).map(([k, e]) => h('a', { href: '#/entry/' + k, cls: k === spec.id ? 'active' : '' }, e.nav)));
  const right = h('div', {});
  const refreshList = async () => right.replaceChildren(await listCard(spec.list));
  const formCard = await buildForm(spec, async () => { await refreshList(); refreshSync(); });
  put(main, h('h1', {}, '数据录入'), sub, h('div', { cls: 'cols' }, formCard, right));
  await refreshList();
}

// ---------- record page ----------
// A stored value in the words of the domain.
function shown(kind, field, v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? '是' : '否';
  if (field === 'gender') return zh(GENDERS, enumName('GENDER_', v));
  if (field === 'levels') return String(v).split(',').filter(Boolean).map(l => zh(DEPUTY_LEVELS, enumName('DEPUTY_LEVEL_', l))).join('、');
  if (field === 'status') return STATUS_ZH[v] || v;
  if (field === 'kind' && kind === 'activity') return zh(ACTIVITY_KINDS, enumName('ACTIVITY_KIND_', v));
  if (field === 'kind') return zh(kind === 'station' ? STATION_KINDS : SUGGESTION_KINDS, v);
  if (field === 'source') return zh(OPINION_SOURCES, v);
  return String(v);
}
// The input a new value of a field of `type` is typed in (the types ResolveConflict reads).
function newValueInput(type) {
  if (type === 'boolean') return h('select', { cls: 'new-value' }, h('option', { value: '' }, '请选择新的值'), h('option', { value: 'true' }, '是'), h('option', { value: 'false' }, '否'));
  const input = h('input', { type: type === 'date' ? 'date' : type === 'integer' ? 'number' : 'text', cls: 'new-value', placeholder: '或输入新的值' });
  if (type === 'integer') input.step = '1';
  return input;
}
// Every conflicting field of one record: each value with where, when and by whom it was
// written and a button to keep it, and an input for a new value. Both go through the API's
// Records.ResolveConflict, whatever the kind; a refusal is shown beside the input, which keeps
// what was typed.
function conflictCard(c, onResolved) {
  const card = h('div', { cls: 'card conflict', 'data-record': c.id });
  card.append(h('h2', {}, `${KIND_ZH[c.kind] || c.kind}：`, h('a', { href: '#/record/' + c.id }, c.title || c.id), h('span', { cls: 'muted' }, ` · ${orgName(c.org)}`)));
  for (const f of c.fields) {
    const err = h('div', { cls: 'form-error resolve-error', 'data-field': f.field });
    const input = newValueInput(f.type);
    const buttons = [];
    async function resolve(value, button) {
      err.textContent = '';
      for (const b of buttons) b.disabled = true;
      const { data, error } = await api('/api/conflicts/resolve', { id: c.id, field: f.field, value, version: c.version });
      for (const b of buttons) b.disabled = false;
      if (error) {
        err.textContent = error.message_zh;
        if (button === 'new') input.focus();
        return;
      }
      onResolved(data);
    }
    const box = h('div', { cls: 'values' });
    for (const v of f.values) {
      const keep = v.raw === null ? null
        : h('button', { cls: 'keep', 'data-field': f.field, 'data-value': v.raw, onclick: () => resolve(v.raw, 'keep') }, '保留此值');
      if (keep) buttons.push(keep);
      box.append(h('div', { cls: 'value' + (v.winner ? ' winner' : '') },
        h('div', { cls: 'v' }, v.value === null || v.value === '' ? '（空）' : shown(c.kind, f.field, v.value)),
        v.winner ? h('div', { cls: 'tag warn' }, '当前显示此值') : null,
        h('div', { cls: 'muted' }, `写入：${orgName(v.org)}（${v.org}）`),
        h('div', { cls: 'muted' }, `时间：${fmtTime(v.at_ms)}`),
        h('div', { cls: 'muted' }, `操作人：${v.author}`),
        keep || h('div', { cls: 'muted' }, '（个人信息不显示原值，请输入新的值）')));
    }
    const useNew = h('button', { cls: 'plain resolve-new', 'data-field': f.field, onclick: () => resolve(input.value, 'new') }, '以新值解决');
    buttons.push(useNew);
    input.addEventListener('keydown', e => { if (e.key === 'Enter') { e.preventDefault(); useNew.click(); } });
    card.append(h('div', { cls: 'conflict-field', 'data-field': f.field }, h('b', {}, `字段：${FIELD_ZH[f.field] || f.field}`), box,
      h('div', { cls: 'resolve-row' }, input, useNew), err));
  }
  return card;
}

async function viewRecord(id) {
  const main = document.getElementById('main');
  const { data: r, error } = await api('/api/record/' + encodeURIComponent(id));
  if (error) { put(main, h('div', { cls: 'card form-error' }, error.message_zh)); return; }
  const fields = h('table', {}, Object.entries(r.fields).filter(([k]) => k !== 'org').map(([k, v]) => h('tr', {}, h('th', {}, FIELD_ZH[k] || k), h('td', {}, shown(r.kind, k, v)))));
  const hist = h('table', { id: 'history' }, h('tr', {}, h('th', {}, '时间'), h('th', {}, '操作人'), h('th', {}, '写入节点'), h('th', {}, '变更')),
    r.history.map(e => h('tr', {}, h('td', {}, fmtTime(e.at_ms)), h('td', {}, e.author), h('td', {}, `${orgName(e.origin_org)}（${e.origin_org}）`), h('td', {}, e.change))));
  const parts = [h('h1', {}, `${KIND_ZH[r.kind] || r.kind}：${r.title}`), h('p', { cls: 'muted' }, `所属单位：${orgName(r.org)}（${r.org}） · 编号 ${r.id}`)];
  if (r.conflicts.length) parts.push(h('h2', {}, '待处理的冲突'), conflictCard(Object.assign({}, r, { fields: r.conflicts }), () => viewRecord(id)));
  parts.push(h('div', { cls: 'card' }, h('h2', {}, '当前内容'), fields));
  if (r.kind === 'deputy' || r.kind === 'station') parts.push(await editCard(r));
  parts.push(h('div', { cls: 'card' }, h('h2', {}, '修改历史（谁、何时、在哪个节点）'), hist));
  put(main, ...parts);
}

// Edits a deputy or station: only the fields changed are sent, the node fills in the rest from
// the record as it holds it (the phone is only shown masked here).
async function editCard(r) {
  const fields = r.kind === 'deputy'
    ? [{ name: 'name', label: '姓名' }, { name: 'constituency', label: '选区' }, { name: 'sector', label: '职业/界别' }, { name: 'phone', label: '联系电话（不修改请留空）' }, { name: 'status', label: '状态', type: 'select', options: DEPUTY_STATUS_CODES }]
    : [{ name: 'name', label: '名称' }, { name: 'address', label: '地址' }];
  const defaults = {};
  for (const f of fields) if (f.name !== 'phone') defaults[f.name] = r.fields[f.name] || '';
  return buildForm({
    id: 'edit-' + r.id, title: '修改', fields, defaults, submit: '保存修改',
    call: v => {
      const changes = {};
      for (const f of fields) if (v[f.name] !== '' && v[f.name] !== defaults[f.name]) changes[f.name] = v[f.name];
      return api('/api/records/' + r.id + '/update', { fields: changes, version: r.version });
    },
  }, () => viewRecord(r.id));
}

// ---------- county overview ----------
async function viewCounty() {
  const main = document.getElementById('main');
  await refreshSync();
  const st = S.status;
  const table = h('table', { id: 'townships' }, h('tr', {}, ['单位', '状态', '最近同步', '待上传', '待下发', '隔离', '最近错误'].map(t => h('th', {}, t))));
  for (const n of st.below) {
    table.append(h('tr', { cls: 'click', 'data-org': n.org_code, onclick: () => go('#/dash?org=' + n.org_code) },
      h('td', {}, `${n.name || n.org_code}（${n.org_code}）`),
      h('td', {}, n.online ? h('span', { cls: 'tag ok' }, '在线') : h('span', { cls: 'tag bad' }, n.reported_ms ? '离线' : '未连接')),
      h('td', {}, fmtTime(n.last_sync_ms)), h('td', {}, n.pending_up), h('td', {}, n.pending_down), h('td', {}, n.quarantined_ops),
      h('td', { title: n.last_error }, n.last_error ? `${fmtTime(n.last_error_ms)} ${n.last_error.slice(0, 60)}` : '')));
  }
  const { data: cf } = await api('/api/conflicts');
  const { data: q } = await api('/api/quarantine');
  const conflicts = h('div', { id: 'conflicts' });
  const drawConflicts = list => {
    conflicts.replaceChildren();
    if (!list.length) conflicts.append(h('p', { cls: 'muted', id: 'no-conflicts' }, '没有待处理的冲突'));
    for (const c of list) conflicts.append(conflictCard(c, async () => { const { data } = await api('/api/conflicts'); drawConflicts(data ? data.conflicts : []); }));
  };
  drawConflicts(cf ? cf.conflicts : []);
  const quarantine = h('div', { cls: 'card', id: 'quarantine-card' });
  const drawQuarantine = data => {
    const open = data ? data.quarantine : [], settled = data ? data.settled : [];
    const qt = h('table', { id: 'quarantine' }, h('tr', {}, ['收到时间', '来自', '原因', '记录', '处理'].map(t => h('th', {}, t))));
    for (const x of open) qt.append(quarantineRow(x, async () => { const { data } = await api('/api/quarantine'); drawQuarantine(data); }));
    const done = h('table', { id: 'quarantine-settled' }, h('tr', {}, ['收到时间', '来自', '原因', '处理时间', '处理结果'].map(t => h('th', {}, t))));
    for (const x of settled) {
      const [byOrg, byUser] = x.settled.by.split(':');
      const how = x.settled.superseded ? '同一操作已由其合法来源送达并生效，自动解除' : `人工处理（${orgName(byOrg)} ${byUser}号用户）：${x.settled.note}`;
      done.append(h('tr', { 'data-id': String(x.id) }, h('td', {}, fmtTime(x.received_ms)), h('td', {}, orgName(x.from)), h('td', {}, x.reason), h('td', {}, fmtTime(x.settled.at_ms)), h('td', { cls: 'how' }, how)));
    }
    put(quarantine, open.length ? qt : h('p', { cls: 'muted', id: 'no-quarantine' }, '没有待处理的隔离操作'),
      settled.length ? [h('h3', {}, '已处理的隔离操作'), done] : null);
  };
  drawQuarantine(q);
  put(main, h('h1', {}, `${orgName(st.node.org_code)} · 下级节点同步状态`),
    h('div', { cls: 'card' }, table, h('p', { cls: 'muted' }, '点击一行查看该单位的数据看板。')),
    h('h2', {}, '待人工处理的冲突（两个节点同时修改了同一字段）'), conflicts,
    h('h2', {}, '隔离的同步操作'), quarantine);
}

// One open quarantine entry, with a reason to type and a button that dismisses it through
// Records.DismissQuarantined; a refusal shows beside the input and the typed reason stays.
function quarantineRow(x, done) {
  const reason = h('input', { cls: 'dismiss-reason', placeholder: '处理理由（必填）', maxlength: '200' });
  const error = h('span', { cls: 'error dismiss-error' });
  const button = h('button', { cls: 'dismiss', type: 'button', onclick: async () => {
    error.textContent = '';
    const { error: refusal } = await rpc('renda.org.v1.Records', 'DismissQuarantined', { id: String(x.id), reason: reason.value });
    if (refusal) { error.textContent = refusal.message_zh || '处理失败'; return; }
    await done();
  } }, '确认处理');
  return h('tr', { 'data-id': String(x.id) }, h('td', {}, fmtTime(x.received_ms)), h('td', {}, orgName(x.from)), h('td', {}, x.reason), h('td', {}, x.record_id),
    h('td', {}, reason, button, error));
}

// ---------- dashboards ----------
function parentOf(code) {
  if (code.length === 12) return code.slice(0, 9);
  if (code.length === 9) return code.slice(0, 6);
  if (code.length === 6 && !code.endsWith('00')) return code.slice(0, 4) + '00';
  return null;
}
// Whether `code` is `root` or below it.
function within(root, code) {
  for (let c = code; c; c = parentOf(c)) if (c === root) return true;
  return false;
}
const PALETTE = ['#b3121c', '#e08a1e', '#2b6cb0', '#1b7f3b', '#7b3fa0', '#888'];
// A bar chart: groups of bars (one per series) per label; clicking a group calls onPick(key).
function barChart(groups, series, opts) {
  const W = 560, rowH = 22 * Math.max(1, series.length) + 10, left = 150, H = Math.max(60, groups.length * rowH + 30);
  const max = opts.max || Math.max(1, ...groups.flatMap(g => series.map((_, i) => g.values[i] || 0)));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': opts.title });
  groups.forEach((g, gi) => {
    const y0 = 10 + gi * rowH;
    svg.append(s('text', { x: left - 6, y: y0 + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, g.label));
    series.forEach((name, si) => {
      const v = g.values[si] || 0, w = (W - left - 70) * v / max;
      const bar = s('rect', { class: 'bar', x: left, y: y0 + si * 22, width: Math.max(1, w), height: 18, fill: PALETTE[si % PALETTE.length], 'data-key': g.key || '', onclick: () => g.key && opts.onPick && opts.onPick(g.key) }, s('title', {}, `${g.label} ${name}：${v}${opts.unit || ''}`));
      svg.append(bar, s('text', { x: left + Math.max(1, w) + 4, y: y0 + si * 22 + 13 }, `${Math.round(v * 10) / 10}${opts.unit || ''}`));
    });
  });
  const legend = series.length > 1 ? h('div', { cls: 'legend' }, series.map((n, i) => h('span', {}, h('i', { style: `background:${PALETTE[i]}` }), n))) : null;
  return h('div', { cls: 'card chart', id: opts.id }, h('h2', {}, opts.title), legend, groups.length ? svg : h('p', { cls: 'muted' }, '暂无数据'));
}

function tableOf(report, index) {
  const t = (report.tables || [])[index || 0];
  if (!t) return { rows: [], get: () => null };
  const col = {};
  t.columns.forEach((c, i) => { col[c.key] = i; });
  const val = cell => (cell ? (cell.int ?? cell.real ?? cell.text ?? null) : null);
  return { rows: t.rows, title: t.title_zh, get: (row, key) => (key in col ? val(row.cells[col[key]]) : null) };
}

async function viewDash(params) {
  const main = document.getElementById('main');
  const org = params.get('org') || S.me.org_code;
  const year = Number(params.get('year')) || new Date().getFullYear();
  const req = name => rpc('renda.report.v1.Reports', 'GetReport', { name, org_code: org, from: { year, month: 1, day: 1 }, to: { year: year + 1, month: 1, day: 1 }, freshness_limit_hours: 0 });
  put(main, h('p', { cls: 'muted' }, '正在生成报表…'));
  const [sug, proj, dep, op] = await Promise.all([req('suggestions'), req('projects'), req('deputies'), req('opinions')]);
  const failed = [sug, proj, dep, op].find(r => r.error);
  if (failed) { put(main, h('div', { cls: 'card form-error' }, failed.error.message_zh)); return; }
  const pick = code => go(`#/dash?org=${code}&year=${year}`);
  const byOrg = (rep, keys) => {
    const t = tableOf(rep, 0);
    return t.rows.map(r => ({ key: t.get(r, 'org_code'), label: t.get(r, 'org_name') || t.get(r, 'org_code'), values: keys.map(k => Number(t.get(r, k)) || 0) }));
  };
  const sum = (rep, key) => { const t = tableOf(rep, 0); return t.rows.reduce((a, r) => a + (Number(t.get(r, key)) || 0), 0); };
  const d = dep.data, p = proj.data, sg = sug.data, o = op.data;
  const up = parentOf(org);
  const kpi = (id, k, v) => h('div', { cls: 'kpi', id }, h('div', { cls: 'v' }, v), h('div', { cls: 'k' }, k));
  const kpis = h('div', { cls: 'kpis' },
    kpi('kpi-deputies', '在任代表', sum(d, 'deputies')), kpi('kpi-points', '履职积分', sum(d, 'points')),
    kpi('kpi-suggestions', '议案建议', sum(sg, 'submitted')), kpi('kpi-projects', '票决通过项目', sum(p, 'adopted')),
    kpi('kpi-opinions', '收集意见', sum(o, 'collected')), kpi('kpi-resolved', '已办结意见', sum(o, 'resolved')));
  const ranking = tableOf(d, 1);
  const rankGroups = ranking.rows.slice(0, 10).map(r => ({ key: '', label: `${ranking.get(r, 'rank')}. ${ranking.get(r, 'name')}`, values: [Number(ranking.get(r, 'points')) || 0] }));
  const routeTotals = ROUTES.map(([k]) => sum(o, k));
  const fresh = h('table', { id: 'freshness' }, h('tr', {}, ['单位', '数据最近到达', '尚待同步的操作', '新鲜度'].map(t => h('th', {}, t))),
    (d.freshness || []).map(f => h('tr', { cls: 'click', onclick: () => pick(f.org_code) }, h('td', {}, `${f.name || orgName(f.org_code)}（${f.org_code}）`), h('td', {}, fmtTime(f.last_sync_unix_ms)), h('td', {}, f.pending_ops),
      h('td', {}, f.stale ? h('span', { cls: 'tag warn' }, '数据可能过期') : h('span', { cls: 'tag ok' }, '及时')))));
  const defs = h('ul', {}, (sg.definitions || []).map(x => h('li', {}, h('b', {}, x.name_zh + '：'), x.definition_zh)));
  put(main, 
    h('h1', {}, `数据看板 · ${d.org_name || orgName(org)} · ${year}年`),
    h('div', { cls: 'subnav' }, up && within(S.me.org_code, up) ? h('a', { href: `#/dash?org=${up}&year=${year}` }, '↑ 返回上一级') : null,
      h('a', { href: `#/dash?org=${org}&year=${year - 1}` }, `${year - 1}年`), h('a', { href: `#/dash?org=${org}&year=${year + 1}` }, `${year + 1}年`)),
    d.stale ? h('div', { cls: 'card form-error' }, d.stale_note_zh) : null,
    kpis,
    h('div', { cls: 'grid2' },
      barChart(byOrg(sg, ['reply_rate', 'satisfaction_rate', 'implementation_rate']), ['答复率', '满意率', '落实率'], { id: 'chart-suggestions', title: '议案建议办理（点击单位下钻）', unit: '%', max: 100, onPick: pick }),
      barChart(byOrg(p, ['avg_progress']), ['平均进度'], { id: 'chart-projects', title: '民生实事项目平均进度', unit: '%', max: 100, onPick: pick }),
      barChart(rankGroups, ['履职积分'], { id: 'chart-points', title: '代表履职积分排名（前十）' }),
      barChart(ROUTES.map(([k, l], i) => ({ key: '', label: l, values: [routeTotals[i]] })), ['件数'], { id: 'chart-opinions', title: '社情民意办理方式' })),
    h('div', { cls: 'grid2' },
      barChart(byOrg(d, ['deputies']), ['在任代表'], { id: 'chart-deputies', title: '各单位在任代表（点击单位下钻）', onPick: pick }),
      barChart(byOrg(o, ['collected', 'resolved']), ['收集', '办结'], { id: 'chart-opinions-org', title: '各单位社情民意', onPick: pick })),
    h('div', { cls: 'card' }, h('h2', {}, '各乡镇(街道)数据新鲜度'), (d.freshness || []).length ? fresh : h('p', { cls: 'muted' }, '本级没有下级节点的同步记录')),
    h('div', { cls: 'card' }, h('h2', {}, '指标口径'), defs));
}

// ---------- sending work down (county) ----------
async function viewDispatch() {
  const main = document.getElementById('main');
  const activity = await buildForm({
    id: 'activity', title: '发起履职活动', submit: '创建活动',
    fields: [
      { name: 'kind', label: '活动类型', type: 'select', options: ACTIVITY_KINDS },
      { name: 'title', label: '活动名称' },
      { name: 'starts_at', label: '开始时间', type: 'datetime-local' },
      { name: 'venue', label: '地点' },
    ],
    service: 'renda.activity.v1.Activities', method: 'CreateActivity',
    build: v => ({ kind: v.kind || undefined, title: v.title, venue: v.venue, starts_at_ms: v.starts_at ? new Date(v.starts_at).getTime() : undefined }),
    errorField: f => (f === 'starts_at_ms' ? 'starts_at' : f),
  }, () => viewDispatch());
  const dispatch = await buildForm({
    id: 'dispatch', title: '发单：派发活动给代表', submit: '发单',
    fields: [
      { name: 'activity_id', label: '履职活动', type: 'ref', ref: REF.activity },
      { name: 'deputy_ids', label: '参加代表', type: 'refs', ref: REF.deputy },
    ],
    service: 'renda.activity.v1.Activities', method: 'DispatchActivity', build: v => v, saved: '已发单，活动将随同步下发到代表所在乡镇(街道)',
  });
  const unit = await buildForm({
    id: 'unit', title: '登记承办单位', fields: [{ name: 'name', label: '单位名称' }],
    service: 'renda.suggestion.v1.Suggestions', method: 'CreateHandlingUnit', build: v => ({ org: S.me.org_code, name: v.name }),
  }, () => viewDispatch());
  const review = await buildForm({
    id: 'review', title: '审核议案建议', submit: '提交审核意见',
    fields: [
      { name: 'suggestion_id', label: '议案建议', type: 'ref', ref: REF.suggestion },
      { name: 'passed', label: '审核结果', type: 'bool', text: '审核通过' },
      { name: 'revision_reason', label: '退回修改的理由' },
      { name: 'on', label: '日期', type: 'date' },
    ],
    defaults: () => ({ on: today() }),
    service: 'renda.suggestion.v1.Suggestions', method: 'ReviewSuggestion', build: v => v,
  });
  const assign = await buildForm({
    id: 'assign', title: '交办议案建议到承办单位', submit: '交办',
    fields: [
      { name: 'suggestion_id', label: '议案建议', type: 'ref', ref: REF.suggestion },
      { name: 'unit_id', label: '承办单位', type: 'ref', ref: REF.unit },
      { name: 'on', label: '交办日期', type: 'date' },
    ],
    defaults: () => ({ on: today() }),
    service: 'renda.suggestion.v1.Suggestions', method: 'AssignSuggestion',
    build: v => ({ suggestion_id: v.suggestion_id, on: v.on, assignment: { mode: 'ASSIGNMENT_MODE_SINGLE', unit_ids: v.unit_id ? [v.unit_id] : [] } }),
    errorField: f => (f === 'assignment' || f === 'unit_ids' ? 'unit_id' : f),
  });
  put(main, h('h1', {}, '工作下派'), h('div', { cls: 'grid2' }, activity, dispatch, review, assign, unit, await listCard({ ref: REF.activity, cols: ENTRY.checkin.list.cols }, '履职活动')));
}

// ---------- login and routing ----------
function viewLogin() {
  const main = document.getElementById('main');
  const form = h('form', { id: 'login-form', autocomplete: 'off' },
    h('div', { cls: 'row', 'data-field': 'login' }, h('label', { cls: 'lbl', for: 'f-login' }, '用户名'), h('input', { type: 'text', name: 'login', id: 'f-login' }), h('div', { cls: 'field-error', id: 'err-login' })),
    h('div', { cls: 'row', 'data-field': 'password' }, h('label', { cls: 'lbl', for: 'f-password' }, '密码'), h('input', { type: 'password', name: 'password', id: 'f-password' }), h('div', { cls: 'field-error', id: 'err-password' })),
    h('button', { type: 'submit', id: 'login-button' }, '登录'));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    const { data, error } = await api('/api/login', { login: form.login.value, password: form.password.value });
    if (error) { const el = document.getElementById('err-' + (error.field || 'password')) || document.getElementById('err-password'); el.textContent = error.message_zh; return; }
    S.me = data;
    sessionStorage.setItem('who', data.display_name || data.login || '');
    await loadOrgs();
    go('#/');
  });
  put(main, h('div', { cls: 'card login' }, h('h1', {}, '登录'), h('p', { cls: 'muted' }, '使用本级或上级人大常委会办公室分配的账号登录。'), form));
}

async function loadOrgs() {
  const { data } = await rpc('renda.org.v1.OrgUnits', 'ListOrgUnits', { under: '' });
  if (data) for (const u of data.units) S.orgs[u.code] = u.name;
}

function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

async function route() {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  if (!S.me && path !== '/login') {
    const { data } = await api('/api/me');
    if (data) { S.me = Object.assign({ login: '', display_name: sessionStorage.getItem('who') || '' }, data); await loadOrgs(); }
  }
  if (!S.me) { renderHeader(); viewLogin(); return; }
  renderHeader();
  refreshSync();
  const parts = (path || '/').split('/').filter(Boolean);
  if (parts[0] === 'login') return viewLogin();
  if (parts[0] === 'entry') return viewEntry(parts[1]);
  if (parts[0] === 'record') return viewRecord(parts[1]);
  if (parts[0] === 'county') return viewCounty();
  if (parts[0] === 'dash') return viewDash(params);
  if (parts[0] === 'dispatch') return viewDispatch();
  go(level() === 'township' ? '#/entry/deputy' : level() === 'county' ? '#/county' : '#/dash');
}

window.addEventListener('hashchange', route);
setInterval(refreshSync, 5000);
route();
