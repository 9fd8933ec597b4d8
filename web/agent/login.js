// Shows the login error that the server signals with ?error=1.
'use strict';
if (new URLSearchParams(location.search).has('error')) {
  document.getElementById('error').hidden = false;
}
