// Live log tail: appends each Server-Sent Event's line to the log box (as text, never HTML).
'use strict';
(function () {
  const box = document.getElementById('log');
  const state = document.getElementById('log-state');
  if (!box || !box.dataset.stream || !window.EventSource) return;
  box.scrollTop = box.scrollHeight;
  const es = new EventSource(box.dataset.stream);
  es.onopen = () => {
    state.textContent = 'live';
    box.dataset.live = '1';
  };
  es.onerror = () => {
    state.textContent = 'reconnecting…';
  };
  es.onmessage = (ev) => {
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    box.append(document.createTextNode(ev.data + '\n'));
    while (box.childNodes.length > 2000) box.removeChild(box.firstChild);
    if (atBottom) box.scrollTop = box.scrollHeight;
  };
})();
