// The studio's words, each as [English, Chinese]; data-t="key" on an element takes its text from here.
const LANGS = ["en", "zh"];
const WORDS = {
  title: ["Creative director", "创意导演"], newFilm: ["New film", "新影片"], brief: ["Brief", "创意简报"],
  platform: ["Platform", "平台"], shots: ["Shots", "镜头数"],
  waitApproval: ["Let me approve the storyboard first", "先让我审批分镜"], submit: ["Make the film", "开始制作"],
  pastRuns: ["Past runs", "历史项目"], review: ["Review queue", "待审队列"], approve: ["Approve and shoot", "批准并拍摄"],
  storyboard: ["Storyboard", "分镜"], theFilm: ["The film", "成片"], cut: ["Cut", "版本"],
  downloads: ["Downloads", "下载"], chat: ["Chat with the director", "与导演对话"], message: ["Message", "消息"],
  send: ["Send", "发送"], description: ["Description", "画面描述"], subtitle: ["Line", "台词"],
  look: ["Look", "光线"], camera: ["Camera", "机位"], save: ["Save shot", "保存镜头"], redo: ["Redo", "重拍"],
  notePh: ["what to change", "要改什么"], kept: ["kept", "采用"], take: ["take", "第几条"], grade: ["grade", "评级"],
  reviewApprove: ["Approve", "通过"], reviewReject: ["Reject", "驳回"], reviewRedo: ["Redo with note", "按意见重拍"],
  noRuns: ["No films yet", "还没有影片"], nothingToReview: ["Nothing to review", "没有待审内容"],
  saved: ["saved", "已保存"], zip: ["Everything (zip of the run)", "全部文件（压缩包）"], cancel: ["Cancel", "取消"],
  resume: ["Resume", "继续"], resumable: ["resumable", "可继续"], chatMark: ["chat", "对话"],
};
const STATUS = {
  queued: ["queued", "排队中"], planning: ["planning", "规划中"], waiting_approval: ["waiting for approval", "等待审批"],
  shooting: ["shooting", "拍摄中"], cutting: ["cutting", "剪辑中"], done: ["done", "完成"], failed: ["failed", "失败"],
};
let LANG = localStorage.getItem("cd-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
// A word in the chosen language, else in English (a language not in LANGS reads English), else the key itself.
function inLang(table, key) { const w = table[key]; return w ? (w[LANGS.indexOf(LANG)] ?? w[0]) : key; }
function t(key) { return inLang(WORDS, key); }
function tStatus(s) { return inLang(STATUS, s); }
function applyStrings(root = document) {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  root.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  root.querySelectorAll("[data-t-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.tPlaceholder); });
}
