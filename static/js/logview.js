// Live step logs: open the tail, poll new lines with a cursor while
// the step runs (every 150 ms), stop when it has finished; older lines load on demand, so a
// 100,000-line log opens as fast as a short one.
(() => {
  const POLL_MS = 150;
  const viewers = new Map();

  function lineEl(seq, stream, text) {
    const div = document.createElement("div");
    div.className = `ln ${stream}`;
    div.dataset.seq = seq;
    div.textContent = text;
    return div;
  }

  class Viewer {
    constructor(url, box) {
      this.url = url;
      this.box = box;
      this.last = 0;
      this.first = null;
      this.timer = null;
      this.box.innerHTML = "";
      this.older = document.createElement("button");
      this.older.className = "btn small older";
      this.older.type = "button";
      this.older.textContent = "Load older lines";
      this.older.hidden = true;
      this.older.addEventListener("click", () => this.loadOlder());
      this.lines = document.createElement("div");
      this.lines.className = "lines";
      this.state = document.createElement("div");
      this.state.className = "log-state muted small";
      this.box.append(this.older, this.lines, this.state);
    }

    async fetchJSON(query) {
      const response = await fetch(`${this.url}${query}`, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    }

    append(lines) {
      if (!lines.length) return;
      const stick = this.lines.scrollTop + this.lines.clientHeight >= this.lines.scrollHeight - 8;
      const frag = document.createDocumentFragment();
      for (const [seq, stream, text] of lines) frag.append(lineEl(seq, stream, text));
      this.lines.append(frag);
      this.last = lines[lines.length - 1][0];
      if (this.first === null) this.first = lines[0][0];
      if (stick) this.lines.scrollTop = this.lines.scrollHeight;
    }

    async start() {
      const data = await this.fetchJSON("");
      this.append(data.lines);
      this.older.hidden = !(this.first && this.first > 1);
      this.lines.scrollTop = this.lines.scrollHeight;
      this.onStatus(data);
    }

    onStatus(data) {
      this.state.textContent = data.finished ? `finished: ${data.status}` : "live…";
      this.box.dataset.status = data.status;
      if (!data.finished) this.timer = setTimeout(() => this.poll(), POLL_MS);
    }

    async poll() {
      try {
        const data = await this.fetchJSON(`?after=${this.last}`);
        this.append(data.lines);
        this.onStatus(data);
      } catch (err) {
        this.state.textContent = `connection lost (${err.message}); retrying…`;
        this.timer = setTimeout(() => this.poll(), POLL_MS * 4);
      }
    }

    async loadOlder() {
      const data = await this.fetchJSON(`?before=${this.first}`);
      if (!data.lines.length) { this.older.hidden = true; return; }
      const height = this.lines.scrollHeight;
      const frag = document.createDocumentFragment();
      for (const [seq, stream, text] of data.lines) frag.append(lineEl(seq, stream, text));
      this.lines.prepend(frag);
      this.first = data.lines[0][0];
      this.older.hidden = this.first <= 1;
      this.lines.scrollTop += this.lines.scrollHeight - height;
    }

    stop() { clearTimeout(this.timer); }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-log]");
    if (!button) return;
    const id = button.dataset.target;
    const row = document.getElementById(`${id}-row`);
    const box = document.getElementById(id);
    if (!row || !box) return;
    row.hidden = !row.hidden;
    if (row.hidden) { viewers.get(id)?.stop(); viewers.delete(id); return; }
    const viewer = new Viewer(button.dataset.log, box);
    viewers.set(id, viewer);
    viewer.start();
  });
})();
