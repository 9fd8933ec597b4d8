// Shows the login error that the server signals with ?error=1, and carries
// the page the agent asked for (?next=) through the form.
'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  if (params.has('error')) document.getElementById('error').hidden = false;
  if (params.has('next')) document.getElementById('next').value = params.get('next');
})();
