// Cobrowse Demo Shop: the cart, updated in place through /api/cart, and the
// free-shipping promo, a widget styled only through the CSSOM.
(() => {
  'use strict';

  // CSS-in-JS, the way styled-components and emotion do it in production:
  // one empty <style id="cssinjs"> whose rules are added with insertRule, so
  // they exist in the CSSOM only and never in a text node.
  let sheet = null;
  function insertRules(rules) {
    if (!sheet) {
      const style = document.createElement('style');
      style.id = 'cssinjs';
      document.head.appendChild(style);
      sheet = style.sheet;
    }
    for (const rule of rules) sheet.insertRule(rule, sheet.cssRules.length);
  }

  const money = (cents) => '$' + (cents / 100).toFixed(2);
  const freeShippingCents = Number(document.body.dataset.freeShippingCents);

  const cart = document.getElementById('cart');
  const count = document.getElementById('cart-count');
  const items = document.getElementById('cart-items');
  const empty = document.getElementById('cart-empty');
  const total = document.getElementById('cart-total');

  // The badge turns green the first time the cart holds something, through a
  // rule inserted at that moment.
  let badgeLit = false;
  function lightBadge(n) {
    if (n > 0 && !badgeLit) {
      insertRules(['#cart-count { background-color: #12b76a; color: #ffffff; }']);
      badgeLit = true;
    }
  }

  // The promo widget: markup built here, styles inserted here.
  let promo = null;
  function mountPromo() {
    insertRules([
      '#promo { display: flex; align-items: center; gap: 18px; margin: 24px 0 28px; padding: 18px 22px; border-radius: 16px; color: #ffffff; background: linear-gradient(120deg, #4338ca 0%, #7c3aed 55%, #db2777 100%); box-shadow: 0 10px 30px rgba(67, 56, 202, .25); }',
      '#promo .promo-icon { flex: none; width: 52px; height: 52px; border-radius: 14px; background: rgba(255, 255, 255, .18) url("/images/truck.svg") center / 32px no-repeat; }',
      '#promo .promo-copy { flex: 1; min-width: 0; }',
      '#promo .promo-title { margin: 0; font-family: "DM Serif Display", Georgia, serif; font-size: 1.35rem; line-height: 1.2; }',
      '#promo .promo-text { margin: 2px 0 0; opacity: .9; }',
      '#promo .promo-meter { flex: 0 0 220px; height: 10px; border-radius: 999px; background: rgba(255, 255, 255, .25); overflow: hidden; }',
      '#promo .promo-meter-fill { height: 100%; border-radius: inherit; background: #ffffff; transition: width .4s ease; }',
      '@media (max-width: 700px) { #promo { flex-wrap: wrap; } #promo .promo-meter { flex-basis: 100%; } }',
    ]);
    promo = document.createElement('aside');
    promo.id = 'promo';
    promo.setAttribute('aria-label', 'Free shipping');
    promo.innerHTML =
      '<div class="promo-icon"></div>' +
      '<div class="promo-copy"><p class="promo-title"></p><p class="promo-text"></p></div>' +
      '<div class="promo-meter" role="progressbar" aria-valuemin="0" aria-valuemax="100"><div class="promo-meter-fill"></div></div>';
    document.getElementById('main').prepend(promo);
  }

  function updatePromo(subtotalCents) {
    const pct = Math.min(100, Math.round((subtotalCents / freeShippingCents) * 100));
    let title = 'Free shipping over ' + money(freeShippingCents).replace(/\.00$/, '');
    let text = 'On every order, no code needed.';
    if (subtotalCents >= freeShippingCents) {
      title = 'Free shipping unlocked';
      text = 'Your order ships free.';
    } else if (subtotalCents > 0) {
      text = 'Add ' + money(freeShippingCents - subtotalCents) + ' more to get it.';
    }
    promo.querySelector('.promo-title').textContent = title;
    promo.querySelector('.promo-text').textContent = text;
    promo.querySelector('.promo-meter').setAttribute('aria-valuenow', String(pct));
    promo.querySelector('.promo-meter-fill').style.width = pct + '%';
  }

  // renderCart shows a cart as returned by /api/cart, building the same
  // markup the server renders.
  function renderCart(c) {
    items.replaceChildren(...c.items.map((item) => {
      const li = document.createElement('li');
      li.className = 'cart-item';
      li.dataset.product = item.product;
      const name = document.createElement('span');
      name.className = 'cart-item-name';
      name.textContent = item.name;
      const qty = document.createElement('span');
      qty.className = 'cart-item-qty';
      qty.textContent = '× ' + item.quantity;
      li.append(name, ' ', qty);
      return li;
    }));
    count.textContent = String(c.count);
    count.classList.remove('pop');
    void count.offsetWidth; // restart the animation
    count.classList.add('pop');
    empty.hidden = c.count > 0;
    total.textContent = c.subtotal;
    cart.dataset.subtotalCents = String(c.subtotal_cents);
    lightBadge(c.count);
    updatePromo(c.subtotal_cents);
  }

  async function addToCart(button) {
    button.disabled = true;
    try {
      const res = await fetch('/api/cart', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ product: button.dataset.product }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      renderCart(body);
      button.textContent = 'Added ✓';
    } catch (err) {
      console.error('add to cart:', err);
      button.textContent = 'Try again';
    } finally {
      button.disabled = false;
      setTimeout(() => { button.textContent = 'Add to cart'; }, 1500);
    }
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest('button.add-to-cart');
    if (button) addToCart(button);
    else if (cart.open && !cart.contains(event.target)) cart.open = false;
  });

  mountPromo();
  updatePromo(Number(cart.dataset.subtotalCents));
  lightBadge(Number(count.textContent));
})();
