// The studio's words in English and Chinese; data-t="key" on an element takes its text from here.
const STRINGS = {
  en: {
    title: "Creative director", newFilm: "New film", brief: "Brief", platform: "Platform", shots: "Shots",
    waitApproval: "Let me approve the storyboard first", submit: "Make the film", pastRuns: "Past runs",
    review: "Review queue", approve: "Approve and shoot", storyboard: "Storyboard", theFilm: "The film",
    cut: "Cut", downloads: "Downloads", chat: "Chat with the director", message: "Message", send: "Send",
    description: "Description", subtitle: "Line", look: "Look", camera: "Camera", save: "Save shot",
    redo: "Redo", notePh: "what to change", kept: "kept", take: "take", grade: "grade",
    reviewApprove: "Approve", reviewReject: "Reject", reviewRedo: "Redo with note", noRuns: "No films yet",
    nothingToReview: "Nothing to review", saved: "saved", zip: "Everything (zip of the run)",
    cancel: "Cancel", resume: "Resume", resumable: "resumable", chatMark: "chat",
    status: {queued: "queued", planning: "planning", waiting_approval: "waiting for approval",
             shooting: "shooting", cutting: "cutting", done: "done", failed: "failed"},
  },
  zh: {
    title: "创意导演", newFilm: "新影片", brief: "创意简报", platform: "平台", shots: "镜头数",
    waitApproval: "先让我审批分镜", submit: "开始制作", pastRuns: "历史项目",
    review: "待审队列", approve: "批准并拍摄", storyboard: "分镜", theFilm: "成片",
    cut: "版本", downloads: "下载", chat: "与导演对话", message: "消息", send: "发送",
    description: "画面描述", subtitle: "台词", look: "光线", camera: "机位", save: "保存镜头",
    redo: "重拍", notePh: "要改什么", kept: "采用", take: "第几条", grade: "评级",
    reviewApprove: "通过", reviewReject: "驳回", reviewRedo: "按意见重拍", noRuns: "还没有影片",
    nothingToReview: "没有待审内容", saved: "已保存", zip: "全部文件（压缩包）",
    cancel: "取消", resume: "继续", resumable: "可继续", chatMark: "对话",
    status: {queued: "排队中", planning: "规划中", waiting_approval: "等待审批",
             shooting: "拍摄中", cutting: "剪辑中", done: "完成", failed: "失败"},
  },
};
let LANG = localStorage.getItem("cd-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
function t(key) { return STRINGS[LANG][key] ?? STRINGS.en[key] ?? key; }
function tStatus(s) { return (STRINGS[LANG].status || {})[s] || s; }
function applyStrings(root = document) {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  root.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  root.querySelectorAll("[data-t-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.tPlaceholder); });
}
