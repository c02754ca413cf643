/* 政策问答 · 悬浮气泡嵌入脚本（由政策问答服务自身提供，不依赖 CDN 或任何外部资源）。
 *
 * 用法：在内网门户页面中加入
 *   <script src="https://问答服务地址/embed/bubble.js" defer></script>
 * 页面右下角出现“政策问答”按钮；点击打开（再点击或按 Esc 关闭）内嵌问答页面的面板。
 * 服务地址取自本脚本自己的 src，所以脚本可以从任何来源的页面加载。
 * 问答页面在 iframe 中打开：服务端的 RAG_FRAME_ANCESTORS 必须允许门户页面的来源。
 */
(function () {
  "use strict";
  // Filled in by the server (GET /embed/bubble.js): the chat's path (root_path + ui_path), a JSON string.
  var UI_PATH = "__POLICY_QA_UI_PATH__";

  // document.currentScript is only set while this script first runs: read it now, not on DOMContentLoaded.
  var script = document.currentScript;
  if (!script || !script.src) {
    var candidates = document.querySelectorAll('script[src*="/embed/bubble.js"]');
    script = candidates.length ? candidates[candidates.length - 1] : null;
  }
  if (!script || !script.src || window.__policyQaBubble) {
    return; // no address to talk to, or the bubble is already on this page
  }
  var chatUrl;
  try {
    chatUrl = new URL(UI_PATH, script.src).href; // the server's origin, from the script's own address
  } catch (e) {
    return;
  }
  window.__policyQaBubble = { url: chatUrl };

  var CSS = [
    ":host{all:initial}",
    ".pqa-button{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:64px;height:64px;border-radius:50%;",
    "border:0;padding:0;margin:0;background:#1f4e8c;color:#fff;font:600 13px/1.2 'WenQuanYi Zen Hei','Noto Sans CJK SC',",
    "'Microsoft YaHei',sans-serif;cursor:pointer;box-shadow:0 4px 14px rgba(16,24,40,.28);letter-spacing:0}",
    ".pqa-button:hover{background:#183f73}",
    ".pqa-button:focus-visible{outline:3px solid #f5b700;outline-offset:3px}",
    ".pqa-panel{position:fixed;right:20px;bottom:96px;z-index:2147483000;width:400px;height:640px;",
    "max-width:calc(100vw - 40px);max-height:calc(100vh - 116px);display:flex;flex-direction:column;background:#fff;",
    "border-radius:10px;overflow:hidden;box-shadow:0 10px 36px rgba(16,24,40,.32);border:1px solid #d0d5dd}",
    ".pqa-panel[hidden]{display:none}",
    ".pqa-bar{display:flex;align-items:center;justify-content:space-between;flex:none;height:40px;padding:0 6px 0 14px;",
    "background:#1f4e8c;color:#fff;font:600 15px/1 'WenQuanYi Zen Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif}",
    ".pqa-close{width:32px;height:32px;border:0;border-radius:6px;background:transparent;color:#fff;font:22px/1 sans-serif;",
    "cursor:pointer}",
    ".pqa-close:hover{background:rgba(255,255,255,.16)}",
    ".pqa-close:focus-visible{outline:2px solid #f5b700}",
    ".pqa-frame{flex:1;width:100%;height:100%;border:0;display:block;background:#fff}",
    "@media (max-width:480px){.pqa-panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;max-width:none;",
    "max-height:none;border-radius:0;border:0}.pqa-button.pqa-open{display:none}}"
  ].join("");

  function build() {
    var host = document.createElement("div");
    host.id = "policy-qa-bubble";
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host; // the page's CSS stays out
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);

    var button = document.createElement("button");
    button.type = "button";
    button.className = "pqa-button";
    button.textContent = "政策问答";
    button.setAttribute("aria-label", "打开政策问答");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "policy-qa-panel");

    var panel = document.createElement("div");
    panel.className = "pqa-panel";
    panel.id = "policy-qa-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "政策问答");

    var bar = document.createElement("div");
    bar.className = "pqa-bar";
    var title = document.createElement("span");
    title.textContent = "政策问答";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "pqa-close";
    close.textContent = "×";
    close.setAttribute("aria-label", "关闭政策问答");
    bar.appendChild(title);
    bar.appendChild(close);
    panel.appendChild(bar);

    var frame = null; // made on first opening: a page that never opens the chat does not load it

    function open() {
      if (!frame) {
        frame = document.createElement("iframe");
        frame.className = "pqa-frame";
        frame.title = "政策问答";
        frame.setAttribute("allow", "clipboard-write");
        frame.src = chatUrl;
        panel.appendChild(frame);
      }
      panel.hidden = false;
      button.classList.add("pqa-open");
      button.setAttribute("aria-expanded", "true");
      button.setAttribute("aria-label", "关闭政策问答");
      try {
        frame.focus();
      } catch (e) { /* focus is a courtesy */ }
    }

    function shut() {
      panel.hidden = true;
      button.classList.remove("pqa-open");
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("aria-label", "打开政策问答");
      button.focus();
    }

    button.addEventListener("click", function () {
      if (panel.hidden) {
        open();
      } else {
        shut();
      }
    });
    close.addEventListener("click", shut);
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        shut();
      }
    });

    root.appendChild(panel);
    root.appendChild(button);
    document.body.appendChild(host);
  }

  if (document.body) {
    build();
  } else {
    document.addEventListener("DOMContentLoaded", build);
  }
})();
