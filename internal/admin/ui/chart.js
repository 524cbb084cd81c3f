// chart.js: the console's charts, drawn as SVG by the console's own code
// (no library, nothing fetched). Each function returns an <svg> element
// with role="img" and an aria-label that states the figures, so that the
// chart is readable without seeing it (and tests read it):
//
//   capstan.chart.line(series, opts)   lines over time
//     series: [{name, points: [{x: Date|ms, y: number}], color?}]
//     opts: {label, width, height, yFormat(n), unit}
//   capstan.chart.bar(items, opts)     one stacked bar of shares, with legend
//     items: [{label, value, color?}]; opts: {label, width}
//   capstan.chart.funnel(stages, opts) one bar per stage, widths relative
//     to the first, with each stage's count and share of the first
//     stages: [{label, value, color?}]; opts: {label, width}
//
// Elements are built with capstan.h (createElementNS, textContent): data
// never goes through innerHTML.
(function () {
  'use strict';

  var h = function () { return window.capstan.h.apply(null, arguments); };

  // The palette: colour-blind safe (Okabe–Ito based), in the console's tones.
  var PALETTE = ['#0a66c2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#7f8c9b'];

  var numFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  var smallFmt = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 2 });
  // num formats a figure: two decimals at most, two significant digits
  // below 1 (a rate of 0.0042/s stays readable).
  function num(n) { return n !== 0 && Math.abs(n) < 1 ? smallFmt.format(n) : numFmt.format(n); }
  function pct(part, whole) { return whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0; }

  // niceStep rounds a step up to 1, 2 or 5 times a power of ten.
  function niceStep(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  // yScale returns a round maximum and its tick step for values up to v:
  // four or five ticks at round numbers.
  function yScale(v) {
    if (!(v > 0)) return { max: 1, step: 0.25 };
    var step = niceStep(v / 4);
    return { max: Math.ceil(v / step - 1e-9) * step, step: step };
  }

  function pad2(n) { return String(n).padStart(2, '0'); }

  // timeTick labels a time for an axis spanning span milliseconds (UTC, as
  // the server counts).
  function timeTick(ms, span) {
    var d = new Date(ms);
    var hm = pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes());
    if (span > 2 * 86400000) {
      var day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()] + ' ' + d.getUTCDate();
      return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? day : day + ' ' + hm;
    }
    return hm;
  }

  function svgRoot(width, height, label, cls) {
    return h('svg', {
      xmlns: 'http://www.w3.org/2000/svg', viewBox: '0 0 ' + width + ' ' + height,
      width: '100%', preserveAspectRatio: 'xMidYMid meet',
      role: 'img', 'aria-label': label, class: 'chart ' + cls,
    }, h('title', null, label));
  }

  // line draws series over time: axes, gridlines, one line and soft area
  // per series, a legend, and the latest value of each.
  function line(series, opts) {
    opts = opts || {};
    var W = opts.width || 640, H = opts.height || 220;
    var m = { top: 16, right: 16, bottom: 28, left: 48 };
    var fmtY = opts.yFormat || num;
    var unit = opts.unit || '';
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p); }); });
    var xs = all.map(function (p) { return +p.x; });
    var x0 = xs.length ? Math.min.apply(null, xs) : 0, x1 = xs.length ? Math.max.apply(null, xs) : 1;
    if (x1 === x0) x1 = x0 + 1;
    var ys = yScale(Math.max.apply(null, [0].concat(all.map(function (p) { return p.y; }))));
    var yMax = ys.max;
    var iw = W - m.left - m.right, ih = H - m.top - m.bottom;
    var X = function (v) { return m.left + ((+v - x0) / (x1 - x0)) * iw; };
    var Y = function (v) { return m.top + ih - (v / yMax) * ih; };

    var summary = series.map(function (s) {
      var ys = s.points.map(function (p) { return p.y; });
      var peak = ys.length ? Math.max.apply(null, ys) : 0;
      var avg = ys.length ? ys.reduce(function (a, b) { return a + b; }, 0) / ys.length : 0;
      var last = ys.length ? ys[ys.length - 1] : 0;
      return s.name + ': peak ' + fmtY(peak) + unit + ', average ' + fmtY(avg) + unit + ', latest ' + fmtY(last) + unit;
    }).join('; ');
    var label = (opts.label || 'Chart') + '. ' + (summary || 'no data');
    var svg = svgRoot(W, H, label, 'chart-line');

    // Grid and y axis, at round values.
    var grid = h('g', { class: 'chart-grid' });
    for (var i = 0; i * ys.step <= yMax + 1e-9; i++) {
      var v = Math.round(i * ys.step * 1e6) / 1e6, y = Y(v);
      grid.appendChild(h('line', { x1: m.left, x2: W - m.right, y1: y, y2: y, class: i === 0 ? 'chart-axis' : 'chart-gridline' }));
      grid.appendChild(h('text', { x: m.left - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-tick' }, fmtY(v)));
    }
    // x axis: about 6 ticks at round times.
    var span = x1 - x0;
    var stepChoices = [60e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3];
    var tick = stepChoices.find(function (s) { return span / s <= 6; }) || 86400e3;
    for (var t = Math.ceil(x0 / tick) * tick; t <= x1; t += tick) {
      var x = X(t);
      grid.appendChild(h('line', { x1: x, x2: x, y1: m.top + ih, y2: m.top + ih + 4, class: 'chart-axis' }));
      grid.appendChild(h('text', { x: x, y: H - 8, 'text-anchor': 'middle', class: 'chart-tick' }, timeTick(t, span)));
    }
    svg.appendChild(grid);

    series.forEach(function (s, si) {
      var color = s.color || PALETTE[si % PALETTE.length];
      if (!s.points.length) return;
      var d = s.points.map(function (p, k) { return (k ? 'L' : 'M') + X(p.x).toFixed(1) + ' ' + Y(p.y).toFixed(1); }).join(' ');
      var area = d + ' L' + X(s.points[s.points.length - 1].x).toFixed(1) + ' ' + Y(0) + ' L' + X(s.points[0].x).toFixed(1) + ' ' + Y(0) + ' Z';
      svg.appendChild(h('path', { d: area, fill: color, 'fill-opacity': 0.08, stroke: 'none' }));
      svg.appendChild(h('path', { d: d, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round', class: 'chart-series' }));
      var lastP = s.points[s.points.length - 1];
      svg.appendChild(h('circle', { cx: X(lastP.x), cy: Y(lastP.y), r: 3, fill: color }));
    });
    // Legend, top right.
    var lx = W - m.right;
    for (var k = series.length - 1; k >= 0; k--) {
      var s = series[k], color = s.color || PALETTE[k % PALETTE.length];
      var text = s.name;
      var w = 14 + text.length * 6.6;
      lx -= w + 10;
      svg.appendChild(h('g', { class: 'chart-legend' },
        h('rect', { x: lx, y: 2, width: 10, height: 10, rx: 2, fill: color }),
        h('text', { x: lx + 14, y: 11 }, text)));
    }
    return svg;
  }

  // bar draws one horizontal bar split into the items' shares (match
  // coverage), with a legend giving each count and share.
  function bar(items, opts) {
    opts = opts || {};
    var W = opts.width || 640;
    var total = items.reduce(function (a, it) { return a + (it.value || 0); }, 0);
    var rows = Math.ceil(items.length / 2);
    var H = 44 + rows * 22;
    var label = (opts.label || 'Shares') + ' of ' + num(total) + ': ' + items.map(function (it) {
      return it.label + ' ' + num(it.value) + ' (' + pct(it.value, total) + '%)';
    }).join(', ');
    var svg = svgRoot(W, H, label, 'chart-bar');
    var x = 0, bw = W, y = 4, bh = 26;
    svg.appendChild(h('rect', { x: 0, y: y, width: bw, height: bh, rx: 5, class: 'chart-track' }));
    items.forEach(function (it, i) {
      var color = it.color || PALETTE[i % PALETTE.length];
      var w = total > 0 ? (it.value / total) * bw : 0;
      if (w <= 0) return;
      svg.appendChild(h('rect', { x: x, y: y, width: Math.max(w, 1), height: bh, fill: color, class: 'chart-segment' },
        h('title', null, it.label + ': ' + num(it.value) + ' (' + pct(it.value, total) + '%)')));
      if (w > 44) {
        svg.appendChild(h('text', { x: x + w / 2, y: y + 17, 'text-anchor': 'middle', class: 'chart-inbar' }, pct(it.value, total) + '%'));
      }
      x += w;
    });
    if (total === 0) {
      svg.appendChild(h('text', { x: bw / 2, y: y + 17, 'text-anchor': 'middle', class: 'chart-tick' }, 'no delivered conversions in this window'));
    }
    items.forEach(function (it, i) {
      var color = it.color || PALETTE[i % PALETTE.length];
      var col = i % 2, row = Math.floor(i / 2);
      var lx = col * (W / 2), ly = 44 + row * 22;
      svg.appendChild(h('g', { class: 'chart-legend' },
        h('rect', { x: lx, y: ly - 10, width: 12, height: 12, rx: 2, fill: color }),
        h('text', { x: lx + 18, y: ly }, it.label + ' — ' + num(it.value) + ' (' + pct(it.value, total) + '%)')));
    });
    return svg;
  }

  // funnel draws one centred bar per stage, its width relative to the
  // first stage, labelled with the count and the share of the first.
  function funnel(stages, opts) {
    opts = opts || {};
    var W = opts.width || 640;
    var rowH = 34, labelW = 110, valueW = 110;
    var H = stages.length * rowH + 4;
    var first = stages.length ? stages[0].value : 0;
    var maxV = Math.max.apply(null, [0].concat(stages.map(function (s) { return s.value; })));
    var label = (opts.label || 'Funnel') + ': ' + stages.map(function (s, i) {
      return s.label + ' ' + num(s.value) + (i > 0 && first > 0 ? ' (' + pct(s.value, first) + '%)' : '');
    }).join(', ');
    var svg = svgRoot(W, H, label, 'chart-funnel');
    var bw = W - labelW - valueW;
    stages.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      var y = i * rowH + 2;
      var w = maxV > 0 ? Math.max((s.value / maxV) * bw, s.value > 0 ? 2 : 0) : 0;
      var x = labelW + (bw - w) / 2;
      svg.appendChild(h('text', { x: labelW - 10, y: y + 20, 'text-anchor': 'end', class: 'chart-label' }, s.label));
      svg.appendChild(h('rect', { x: labelW, y: y + 3, width: bw, height: rowH - 8, rx: 5, class: 'chart-track' }));
      if (w > 0) svg.appendChild(h('rect', { x: x, y: y + 3, width: w, height: rowH - 8, rx: 5, fill: color, class: 'chart-segment' }));
      var share = i > 0 && first > 0 ? '  ' + pct(s.value, first) + '%' : '';
      svg.appendChild(h('text', { x: W - valueW + 10, y: y + 20, class: 'chart-value' }, num(s.value),
        h('tspan', { class: 'chart-share' }, share)));
    });
    return svg;
  }

  window.capstan = window.capstan || {};
  window.capstan.chart = { line: line, bar: bar, funnel: funnel, palette: PALETTE };
})();
