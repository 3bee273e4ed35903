var Q,S,xe,it,U,ge,Ce,Te,ae,B,M,Pe,ce,ie,le,lt,G={},V=[],ct=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,X=Array.isArray;function H(t,e){for(var n in e)t[n]=e[n];return t}function ue(t){t&&t.parentNode&&t.parentNode.removeChild(t)}function Y(t,e,n){var o,s,r,i={};for(r in e)r=="key"?o=e[r]:r=="ref"?s=e[r]:i[r]=e[r];if(arguments.length>2&&(i.children=arguments.length>3?Q.call(arguments,2):n),typeof t=="function"&&t.defaultProps!=null)for(r in t.defaultProps)i[r]===void 0&&(i[r]=t.defaultProps[r]);return J(t,i,o,s,null)}function J(t,e,n,o,s){var r={type:t,props:e,key:n,ref:o,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:s??++xe,__i:-1,__u:0};return s==null&&S.vnode!=null&&S.vnode(r),r}function Z(t){return t.children}function L(t,e){this.props=t,this.context=e}function R(t,e){if(e==null)return t.__?R(t.__,t.__i+1):null;for(var n;e<t.__k.length;e++)if((n=t.__k[e])!=null&&n.__e!=null)return n.__e;return typeof t.type=="function"?R(t):null}function ut(t){if(t.__P&&t.__d){var e=t.__v,n=e.__e,o=[],s=[],r=H({},e);r.__v=e.__v+1,S.vnode&&S.vnode(r),_e(t.__P,r,e,t.__n,t.__P.namespaceURI,32&e.__u?[n]:null,o,n??R(e),!!(32&e.__u),s),r.__v=e.__v,r.__.__k[r.__i]=r,Ee(o,r,s),e.__e=e.__=null,r.__e!=n&&Ae(r)}}function Ae(t){if((t=t.__)!=null&&t.__c!=null)return t.__e=t.__c.base=null,t.__k.some(function(e){if(e!=null&&e.__e!=null)return t.__e=t.__c.base=e.__e}),Ae(t)}function we(t){(!t.__d&&(t.__d=!0)&&U.push(t)&&!K.__r++||ge!=S.debounceRendering)&&((ge=S.debounceRendering)||Ce)(K)}function K(){try{for(var t,e=1;U.length;)U.length>e&&U.sort(Te),t=U.shift(),e=U.length,ut(t)}finally{U.length=K.__r=0}}function Oe(t,e,n,o,s,r,i,l,p,u,d){var v,a,c,m,_,$,k=o&&o.__k||V,y=e.length;for(p=_t(n,e,k,p,y),v=0;v<y;v++)(c=n.__k[v])!=null&&(a=c.__i!=-1&&k[c.__i]||G,c.__i=v,$=_e(t,c,a,s,r,i,l,p,u,d),m=c.__e,c.ref&&a.ref!=c.ref&&(a.ref&&de(a.ref,null,c),d.push(c.ref,c.__c||m,c)),_==null&&m!=null&&(_=m),4&c.__u?(p=je(c,p,t),a.__e&&(a.__e=null)):typeof c.type=="function"&&$!==void 0?p=$:m&&(p=m.nextSibling),c.__u&=-7);return n.__e=_,p}function _t(t,e,n,o,s){var r,i,l,p,u,d=n.length,v=d,a=0;for(t.__k=new Array(s),r=0;r<s;r++)(i=e[r])!=null&&typeof i!="boolean"&&typeof i!="function"?(typeof i=="string"||typeof i=="number"||typeof i=="bigint"||i.constructor==String?i=t.__k[r]=J(null,i,null,null,null):X(i)?i=t.__k[r]=J(Z,{children:i},null,null,null):i.constructor===void 0&&i.__b>0?i=t.__k[r]=J(i.type,i.props,i.key,i.ref?i.ref:null,i.__v):t.__k[r]=i,p=r+a,i.__=t,i.__b=t.__b+1,l=null,(u=i.__i=dt(i,n,p,v))!=-1&&(v--,(l=n[u])&&(l.__u|=2)),l==null||l.__v==null?(u==-1&&(s>d?a--:s<d&&a++),typeof i.type!="function"&&(i.__u|=4)):u!=p&&(u==p-1?a--:u==p+1?a++:(u>p?a--:a++,i.__u|=4))):t.__k[r]=null;if(v)for(r=0;r<d;r++)(l=n[r])!=null&&(2&l.__u)==0&&(l.__e==o&&(o=R(l)),De(l,l));return o}function je(t,e,n){var o,s;if(typeof t.type=="function"){for(o=t.__k,s=0;o&&s<o.length;s++)o[s]&&(o[s].__=t,e=je(o[s],e,n));return e}t.__e!=e&&(e&&t.type&&!e.parentNode&&(e=R(t)),e=n.insertBefore(t.__e,e||null));do e=e&&e.nextSibling;while(e!=null&&e.nodeType==8);return e}function dt(t,e,n,o){var s,r,i,l=t.key,p=t.type,u=e[n],d=u!=null&&(2&u.__u)==0;if(u===null&&l==null||d&&l==u.key&&p==u.type)return n;if(o>(d?1:0)){for(s=n-1,r=n+1;s>=0||r<e.length;)if((u=e[i=s>=0?s--:r++])!=null&&(2&u.__u)==0&&l==u.key&&p==u.type)return i}return-1}function ke(t,e,n){e[0]=="-"?t.setProperty(e,n??""):t[e]=n==null?"":typeof n!="number"||ct.test(e)?n:n+"px"}function W(t,e,n,o,s){var r,i;e:if(e=="style")if(typeof n=="string")t.style.cssText=n;else{if(typeof o=="string"&&(t.style.cssText=o=""),o)for(e in o)n&&e in n||ke(t.style,e,"");if(n)for(e in n)o&&n[e]==o[e]||ke(t.style,e,n[e])}else if(e[0]=="o"&&e[1]=="n")r=e!=(e=e.replace(Pe,"$1")),i=e.toLowerCase(),e=i in t||e=="onFocusOut"||e=="onFocusIn"?i.slice(2):e.slice(2),t.l||(t.l={}),t.l[e+r]=n,n?o?n[M]=o[M]:(n[M]=ce,t.addEventListener(e,r?le:ie,r)):t.removeEventListener(e,r?le:ie,r);else{if(s=="http://www.w3.org/2000/svg")e=e.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(e!="width"&&e!="height"&&e!="href"&&e!="list"&&e!="form"&&e!="tabIndex"&&e!="download"&&e!="rowSpan"&&e!="colSpan"&&e!="role"&&e!="popover"&&e in t)try{t[e]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&e[4]!="-"?t.removeAttribute(e):t.setAttribute(e,e=="popover"&&n==1?"":n))}}function Se(t){return function(e){if(this.l){var n=this.l[e.type+t];if(e[B]==null)e[B]=ce++;else if(e[B]<n[M])return;return n(S.event?S.event(e):e)}}}function _e(t,e,n,o,s,r,i,l,p,u){var d,v,a,c,m,_,$,k,y,x,b,g,h,A,E,I,j=e.type;if(e.constructor!==void 0)return null;128&n.__u&&(p=!!(32&n.__u),r=[l=e.__e=n.__e]),(d=S.__b)&&d(e);e:if(typeof j=="function"){v=i.length;try{if(y=e.props,x=j.prototype&&j.prototype.render,b=(d=j.contextType)&&o[d.__c],g=d?b?b.props.value:d.__:o,n.__c?k=(a=e.__c=n.__c).__=a.__E:(x?e.__c=a=new j(y,g):(e.__c=a=new L(y,g),a.constructor=j,a.render=ft),b&&b.sub(a),a.state||(a.state={}),a.__n=o,c=a.__d=!0,a.__h=[],a._sb=[]),x&&a.__s==null&&(a.__s=a.state),x&&j.getDerivedStateFromProps!=null&&(a.__s==a.state&&(a.__s=H({},a.__s)),H(a.__s,j.getDerivedStateFromProps(y,a.__s))),m=a.props,_=a.state,a.__v=e,c)x&&j.getDerivedStateFromProps==null&&a.componentWillMount!=null&&a.componentWillMount(),x&&a.componentDidMount!=null&&a.__h.push(a.componentDidMount);else{if(x&&j.getDerivedStateFromProps==null&&y!==m&&a.componentWillReceiveProps!=null&&a.componentWillReceiveProps(y,g),e.__v==n.__v||!a.__e&&a.shouldComponentUpdate!=null&&a.shouldComponentUpdate(y,a.__s,g)===!1){e.__v!=n.__v&&(a.props=y,a.state=a.__s,a.__d=!1),e.__e=n.__e,e.__k=n.__k,e.__k.some(function(D){D&&(D.__=e)}),V.push.apply(a.__h,a._sb),a._sb=[],a.__h.length&&i.push(a),l=R(n);break e}a.componentWillUpdate!=null&&a.componentWillUpdate(y,a.__s,g),x&&a.componentDidUpdate!=null&&a.__h.push(function(){a.componentDidUpdate(m,_,$)})}if(a.context=g,a.props=y,a.__P=t,a.__e=!1,h=S.__r,A=0,x)a.state=a.__s,a.__d=!1,h&&h(e),d=a.render(a.props,a.state,a.context),V.push.apply(a.__h,a._sb),a._sb=[];else do a.__d=!1,h&&h(e),d=a.render(a.props,a.state,a.context),a.state=a.__s;while(a.__d&&++A<25);a.state=a.__s,a.getChildContext!=null&&(o=H(H({},o),a.getChildContext())),x&&!c&&a.getSnapshotBeforeUpdate!=null&&($=a.getSnapshotBeforeUpdate(m,_)),E=d!=null&&d.type===Z&&d.key==null?qe(d.props.children):d,l=Oe(t,X(E)?E:[E],e,n,o,s,r,i,l,p,u),a.base=e.__e,e.__u&=-161,a.__h.length&&i.push(a),k&&(a.__E=a.__=null)}catch(D){if(i.length=v,e.__v=null,p||r!=null){if(D.then){for(e.__u|=p?160:128;l&&l.nodeType==8&&l.nextSibling;)l=l.nextSibling;r!=null&&(r[r.indexOf(l)]=null),e.__e=l}else if(r!=null)for(I=r.length;I--;)ue(r[I])}else e.__e=n.__e;e.__k==null&&(e.__k=n.__k||[]),D.then||Ne(e),S.__e(D,e,n)}}else r==null&&e.__v==n.__v?(e.__k=n.__k,e.__e=n.__e):l=e.__e=pt(n.__e,e,n,o,s,r,i,p,u);return(d=S.diffed)&&d(e),128&e.__u?void 0:l}function Ne(t){t&&(t.__c&&(t.__c.__e=!0),t.__k&&t.__k.some(Ne))}function Ee(t,e,n){for(var o=0;o<n.length;o++)de(n[o],n[++o],n[++o]);S.__c&&S.__c(e,t),t.some(function(s){try{t=s.__h,s.__h=[],t.some(function(r){r.call(s)})}catch(r){S.__e(r,s.__v)}})}function qe(t){return typeof t!="object"||t==null||t.__b>0?t:X(t)?t.map(qe):t.constructor!==void 0?null:H({},t)}function pt(t,e,n,o,s,r,i,l,p){var u,d,v,a,c,m,_,$=n.props||G,k=e.props,y=e.type;if(y=="svg"?s="http://www.w3.org/2000/svg":y=="math"?s="http://www.w3.org/1998/Math/MathML":s||(s="http://www.w3.org/1999/xhtml"),r!=null){for(u=0;u<r.length;u++)if((c=r[u])&&"setAttribute"in c==!!y&&(y?c.localName==y:c.nodeType==3)){t=c,r[u]=null;break}}if(t==null){if(y==null)return document.createTextNode(k);t=document.createElementNS(s,y,k.is&&k),l&&(S.__m&&S.__m(e,r),l=!1),r=null}if(y==null)$===k||l&&t.data==k||(t.data=k);else{if(r=y=="textarea"&&k.defaultValue!=null?null:r&&Q.call(t.childNodes),!l&&r!=null)for($={},u=0;u<t.attributes.length;u++)$[(c=t.attributes[u]).name]=c.value;for(u in $)c=$[u],u=="dangerouslySetInnerHTML"?v=c:u=="children"||u in k||u=="value"&&"defaultValue"in k||u=="checked"&&"defaultChecked"in k||W(t,u,null,c,s);for(u in k)c=k[u],u=="children"?a=c:u=="dangerouslySetInnerHTML"?d=c:u=="value"?m=c:u=="checked"?_=c:l&&typeof c!="function"||$[u]===c||W(t,u,c,$[u],s);if(d)l||v&&(d.__html==v.__html||d.__html==t.innerHTML)||(t.innerHTML=d.__html),e.__k=[];else if(v&&(t.innerHTML=""),Oe(e.type=="template"?t.content:t,X(a)?a:[a],e,n,o,y=="foreignObject"?"http://www.w3.org/1999/xhtml":s,r,i,r?r[0]:n.__k&&R(n,0),l,p),r!=null)for(u=r.length;u--;)ue(r[u]);l&&y!="textarea"||(u="value",y=="progress"&&m==null?t.removeAttribute("value"):m!=null&&(m!==t[u]||y=="progress"&&!m||y=="option"&&m!=$[u])&&W(t,u,m,$[u],s),u="checked",_!=null&&_!=t[u]&&W(t,u,_,$[u],s))}return t}function de(t,e,n){try{if(typeof t=="function"){var o=typeof t.__u=="function";o&&t.__u(),o&&e==null||(t.__u=t(e))}else t.current=e}catch(s){S.__e(s,n)}}function De(t,e,n){var o,s;if(S.unmount&&S.unmount(t),(o=t.ref)&&(o.current&&o.current!=t.__e||de(o,null,e)),(o=t.__c)!=null){if(o.componentWillUnmount)try{o.componentWillUnmount()}catch(r){S.__e(r,e)}o.base=o.__P=o.__n=null}if(o=t.__k)for(s=0;s<o.length;s++)o[s]&&De(o[s],e,n||typeof t.type!="function");n||ue(t.__e),t.__c=t.__=t.__e=void 0}function ft(t,e,n){return this.constructor(t,n)}function pe(t,e,n){var o,s,r,i;e==document&&(e=document.documentElement),S.__&&S.__(t,e),s=(o=typeof n=="function")?null:n&&n.__k||e.__k,r=[],i=[],_e(e,t=(!o&&n||e).__k=Y(Z,null,[t]),s||G,G,e.namespaceURI,!o&&n?[n]:s?null:e.firstChild?Q.call(e.childNodes):null,r,!o&&n?n:s?s.__e:e.firstChild,o,i),Ee(r,t,i),t.props.children=null}Q=V.slice,S={__e:function(t,e,n,o){for(var s,r,i;e=e.__;)if((s=e.__c)&&!s.__)try{if((r=s.constructor)&&r.getDerivedStateFromError!=null&&(s.setState(r.getDerivedStateFromError(t)),i=s.__d),s.componentDidCatch!=null&&(s.componentDidCatch(t,o||{}),i=s.__d),i)return s.__E=s}catch(l){t=l}throw t}},xe=0,it=function(t){return t!=null&&t.constructor===void 0},L.prototype.setState=function(t,e){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=H({},this.state),typeof t=="function"&&(t=t(H({},n),this.props)),t&&H(n,t),t!=null&&this.__v&&(e&&this._sb.push(e),we(this))},L.prototype.forceUpdate=function(t){this.__v&&(this.__e=!0,t&&this.__h.push(t),we(this))},L.prototype.render=Z,U=[],Ce=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,Te=function(t,e){return t.__v.__b-e.__v.__b},K.__r=0,ae=Math.random().toString(8),B="__d"+ae,M="__a"+ae,Pe=/(PointerCapture)$|Capture$/i,ce=0,ie=Se(!1),le=Se(!0),lt=0;var Ue=function(t,e,n,o){var s;e[0]=0;for(var r=1;r<e.length;r++){var i=e[r++],l=e[r]?(e[0]|=i?1:2,n[e[r++]]):e[++r];i===3?o[0]=l:i===4?o[1]=Object.assign(o[1]||{},l):i===5?(o[1]=o[1]||{})[e[++r]]=l:i===6?o[1][e[++r]]+=l+"":i?(s=t.apply(l,Ue(t,l,n,["",null])),o.push(s),l[0]?e[0]|=2:(e[r-2]=0,e[r]=s)):o.push(l)}return o},He=new Map;function Ie(t){var e=He.get(this);return e||(e=new Map,He.set(this,e)),(e=Ue(this,e.get(t)||(e.set(t,e=(function(n){for(var o,s,r=1,i="",l="",p=[0],u=function(a){r===1&&(a||(i=i.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?p.push(0,a,i):r===3&&(a||i)?(p.push(3,a,i),r=2):r===2&&i==="..."&&a?p.push(4,a,0):r===2&&i&&!a?p.push(5,0,!0,i):r>=5&&((i||!a&&r===5)&&(p.push(r,0,i,s),r=6),a&&(p.push(r,a,0,s),r=6)),i=""},d=0;d<n.length;d++){d&&(r===1&&u(),u(d));for(var v=0;v<n[d].length;v++)o=n[d][v],r===1?o==="<"?(u(),p=[p],r=3):i+=o:r===4?i==="--"&&o===">"?(r=1,i=""):i=o+i[0]:l?o===l?l="":i+=o:o==='"'||o==="'"?l=o:o===">"?(u(),r=1):r&&(o==="="?(r=5,s=i,i=""):o==="/"&&(r<5||n[d][v+1]===">")?(u(),r===3&&(p=p[0]),r=p,(p=p[0]).push(2,0,r),r=0):o===" "||o==="	"||o===`
`||o==="\r"?(u(),r=2):i+=o),r===3&&i==="!--"&&(r=4,p=p[0])}return u(),p})(t)),e),arguments,[])).length>1?e:e[0]}var f=Ie.bind(Y);var z,C,fe,Re,te=0,Ge=[],T=S,Fe=T.__b,Me=T.__r,Le=T.diffed,ze=T.__c,We=T.unmount,Be=T.__;function he(t,e){T.__h&&T.__h(C,t,te||e),te=0;var n=C.__H||(C.__H={__:[],__h:[]});return t>=n.__.length&&n.__.push({}),n.__[t]}function w(t){return te=1,mt(Qe,t)}function mt(t,e,n){var o=he(z++,2);if(o.t=t,!o.__c&&(o.__=[n?n(e):Qe(void 0,e),function(l){var p=o.__N?o.__N[0]:o.__[0],u=o.t(p,l);p!==u&&(o.__N=[u,o.__[1]],o.__c.setState({}))}],o.__c=C,!C.__f)){var s=function(l,p,u){if(!o.__c.__H)return!0;var d=!1,v=o.__c.props!==l;if(o.__c.__H.__.some(function(c){if(c.__N){d=!0;var m=c.__[0];c.__=c.__N,c.__N=void 0,m!==c.__[0]&&(v=!0)}}),r){var a=r.call(this,l,p,u);return d?a||v:a}return!d||v};C.__f=!0;var r=C.shouldComponentUpdate,i=C.componentWillUpdate;C.componentWillUpdate=function(l,p,u){if(this.__e){var d=r;r=void 0,s(l,p,u),r=d}i&&i.call(this,l,p,u)},C.shouldComponentUpdate=s}return o.__N||o.__}function q(t,e){var n=he(z++,3);!T.__s&&Ke(n.__H,e)&&(n.__=t,n.u=e,C.__H.__h.push(n))}function Ve(t){return te=5,ve(function(){return{current:t}},[])}function ve(t,e){var n=he(z++,7);return Ke(n.__H,e)&&(n.__=t(),n.__H=e,n.__h=t),n.__}function ht(){for(var t;t=Ge.shift();){var e=t.__H;if(t.__P&&e)try{e.__h.some(ee),e.__h.some(me),e.__h=[]}catch(n){e.__h=[],T.__e(n,t.__v)}}}T.__b=function(t){C=null,Fe&&Fe(t)},T.__=function(t,e){t&&e.__k&&e.__k.__m&&(t.__m=e.__k.__m),Be&&Be(t,e)},T.__r=function(t){Me&&Me(t),z=0;var e=(C=t.__c).__H;e&&(fe===C?(e.__h=[],C.__h=[],e.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(e.__h.some(ee),e.__h.some(me),e.__h=[],z=0)),fe=C},T.diffed=function(t){Le&&Le(t);var e=t.__c;e&&e.__H&&(e.__H.__h.length&&(Ge.push(e)!==1&&Re===T.requestAnimationFrame||((Re=T.requestAnimationFrame)||vt)(ht)),e.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),fe=C=null},T.__c=function(t,e){e.some(function(n){try{n.__h.some(ee),n.__h=n.__h.filter(function(o){return!o.__||me(o)})}catch(o){e.some(function(s){s.__h&&(s.__h=[])}),e=[],T.__e(o,n.__v)}}),ze&&ze(t,e)},T.unmount=function(t){We&&We(t);var e,n=t.__c;n&&n.__H&&(n.__H.__.some(function(o){try{ee(o)}catch(s){e=s}}),n.__H=void 0,e&&T.__e(e,n.__v))};var Je=typeof requestAnimationFrame=="function";function vt(t){var e,n=function(){clearTimeout(o),Je&&cancelAnimationFrame(e),setTimeout(t)},o=setTimeout(n,35);Je&&(e=requestAnimationFrame(n))}function ee(t){var e=C,n=t.__c;typeof n=="function"&&(t.__c=void 0,n()),C=e}function me(t){var e=C;t.__c=t.__(),C=e}function Ke(t,e){return!t||t.length!==e.length||e.some(function(n,o){return n!==t[o]})}function Qe(t,e){return typeof e=="function"?e(t):e}var N=null;function Xe(t){try{let e=t.split(".")[1].replace(/-/g,"+").replace(/_/g,"/");return JSON.parse(atob(e))}catch{return{}}}function $e(){return N}function Ye(t){let e=t.trim(),n=e.startsWith("hk_")?{sub:"API key"}:Xe(e);return N={token:e,refresh:null,claims:n},N}function Ze(t){return N={token:t.access_token,refresh:t.refresh_token,claims:Xe(t.access_token)},N}async function et(t,e,n){let o=await O("POST","/v1/auth/token",{body:{grant_type:"password",tenant:t,username:e,password:n},anonymous:!0});return o.status===200?(Ze(o.body),null):o.body}async function tt(){if(!N||!N.refresh)return!1;let t=await O("POST","/v1/auth/token",{body:{grant_type:"refresh_token",refresh_token:N.refresh},anonymous:!0});return t.status!==200?!1:(Ze(t.body),!0)}async function nt(){let t=N;N=null,t&&t.refresh&&await O("POST","/v1/auth/revoke",{body:{refresh_token:t.refresh},anonymous:!0})}async function ot(){return(await fetch("/.well-known/jwks.json")).ok}async function O(t,e,{body:n,headers:o={},anonymous:s=!1,retried:r=!1}={}){let i={...o};!s&&N&&(i.authorization=`Bearer ${N.token}`),n!==void 0&&(i["content-type"]="application/json");let l=await fetch(e,{method:t,headers:i,body:n===void 0?void 0:JSON.stringify(n),cache:"no-store"});if(l.status===401&&!s&&!r&&await tt())return O(t,e,{body:n,headers:o,anonymous:s,retried:!0});let p=l.headers.get("content-type")||"",u=await l.text(),d=u;if(p.includes("json")&&u)try{d=JSON.parse(u)}catch{d=u}return{status:l.status,headers:l.headers,body:d}}async function*be(t,{lastEventId:e,signal:n}){let o={accept:"text/event-stream"};N&&(o.authorization=`Bearer ${N.token}`),e&&(o["last-event-id"]=e);let s=await fetch(t,{headers:o,signal:n,cache:"no-store"});if(s.status===401&&await tt()){yield*be(t,{lastEventId:e,signal:n});return}if(!s.ok){let l=await s.json().catch(()=>({}));throw new Error(l.detail||`HTTP ${s.status}`)}let r=s.body.pipeThrough(new TextDecoderStream).getReader(),i="";for(;;){let{value:l,done:p}=await r.read();if(p)return;i+=l;let u;for(;(u=i.indexOf(`

`))>=0;){let d=i.slice(0,u);i=i.slice(u+2);let v={id:null,event:"message",data:""};for(let a of d.split(`
`)){if(a.startsWith(":"))continue;let c=a.indexOf(":"),m=c<0?a:a.slice(0,c),_=c<0?"":a.slice(c+1).replace(/^ /,"");m==="id"?v.id=_:m==="event"?v.event=_:m==="data"&&(v.data+=(v.data?`
`:"")+_)}(v.data||v.id)&&(yield v)}}}var bt=new Set(["restore","history","events"]),yt=new Set(["order","q","select","limit","cursor","Prefer","min_position"]);function rt(t,e){let n=0;for(;e&&e.$ref&&n++<10;){let o=decodeURIComponent(e.$ref.replace("#/components/schemas/",""));e=t.components.schemas[o]}return e||{}}function ye(t,e){let n=e&&e.requestBody&&e.requestBody.content,o=n&&n["application/json"];return o?rt(t,o.schema):null}function st(t){let e=new Map;for(let[n,o]of Object.entries(t.paths)){let s=/^\/v1\/([a-z][a-z0-9_]*)\/([a-z][a-z0-9_]*)$/.exec(n);if(!s||!o.get||!o.post||!o.get.parameters)continue;let[,r,i]=s,l=`${r}.${i}`,p=o.get.parameters.filter(d=>d.in==="query"),u=p.find(d=>d.name==="order");e.set(`${r}/${i}`,{app:r,doc:i,name:l,path:n,document:rt(t,{$ref:`#/components/schemas/${l}`}),create:ye(t,o.post),patch:null,filters:p.filter(d=>!yt.has(d.name)).map(d=>({name:d.name,operators:d["x-herald-operators"]||["eq"]})),sortable:u&&u["x-herald-sortable"]||[],searchable:p.some(d=>d.name==="q"),commands:[]})}for(let[n,o]of Object.entries(t.paths)){let s=/^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/\{id\}\/([a-z][a-z0-9_]*)$/.exec(n),r=/^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/([a-z][a-z0-9_]*)$/.exec(n),i=/^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/\{id\}$/.exec(n);i&&e.has(`${i[1]}/${i[2]}`)&&o.patch&&(e.get(`${i[1]}/${i[2]}`).patch=ye(t,o.patch));let l=s||r;if(!l||!o.post||bt.has(l[3]))continue;let p=e.get(`${l[1]}/${l[2]}`);p&&p.commands.push({name:l[3],onCollection:!s,summary:o.post.summary||"",params:ye(t,o.post)||{type:"object",properties:{}}})}return e}function at(t,e=5){let n=t.document&&t.document.properties||{},o=new Set(["id","version","created_at","created_by","updated_at","updated_by"]);return Object.entries(n).filter(([s,r])=>!o.has(s)&&!["object","array"].includes(ne(r))).map(([s])=>s).slice(0,e)}function ne(t){return t?Array.isArray(t.type)?t.type.find(e=>e!=="null")||"string":t.type?t.type:t.enum&&typeof t.enum[0]=="number"?"number":"string":"string"}function oe(t){let e=ne(t);if(t.enum)return"enum";if(e==="boolean")return"boolean";if(e==="integer"||e==="number")return"number";if(e==="array"){let n=t.items||{};return["object","array"].includes(ne(n))?"json":"list"}return e==="object"?"json":t.format==="password"?"password":"text"}function gt(t,e){return e==null?"":t==="list"?e.join(`
`):t==="json"?JSON.stringify(e,null,2):String(e)}function wt(t,e,n){if(n!=="")switch(t){case"number":{let o=Number(n);return Number.isFinite(o)?o:{invalid:"must be a number"}}case"boolean":return n==="true";case"enum":{let o=e.enum.find(s=>String(s)===n);return o===void 0?{invalid:"is not one of the choices"}:o}case"list":{let o=oe(e.items||{});return n.split(`
`).map(s=>s.trim()).filter(s=>s!=="").map(s=>o==="number"?Number(s):s)}case"json":try{return JSON.parse(n)}catch{return{invalid:"is not valid JSON"}}default:return n}}function kt(t){let e={},n=[];for(let o of t&&t.errors||[]){let s=(o.pointer||"").split("/")[1],r=o.pointer&&o.pointer.split("/").length>2?`${o.pointer.split("/").slice(2).join("/")}: ${o.detail}`:o.detail;s?(e[s]=e[s]||[]).push(r):n.push(o.detail||o.parameter)}return{byField:e,general:n}}function re({schema:t,initial:e={},submit:n,label:o,id:s,patch:r=!1}){let i=new Set(t&&t.required||[]),l=Object.entries(t&&t.properties||{}).filter(([,b])=>!b.readOnly).sort(([b],[g])=>Number(i.has(g))-Number(i.has(b))),[p,u]=w(()=>Object.fromEntries(l.map(([b,g])=>[b,gt(oe(g),e[b])]))),[d,v]=w(null),[a,c]=w(!1),m={},_={};for(let[b,g]of l){let h=wt(oe(g),g,p[b]||"");if(h&&typeof h=="object"&&"invalid"in h&&!Array.isArray(h))m[b]=h.invalid;else{if(r&&JSON.stringify(h)===JSON.stringify(e[b]))continue;h!==void 0?_[b]=h:r&&e[b]!==void 0&&(_[b]=null)}}let{byField:$,general:k}=kt(d);async function y(b){if(b.preventDefault(),Object.keys(m).length)return;c(!0);let g=await n(_);c(!1),v(g||null)}let x=(b,g)=>{let h=oe(g),A=p[b]||"",E=j=>u({...p,[b]:j.currentTarget.value}),I=`${s}-${b}`;if(h==="enum"||h==="boolean"){let j=h==="boolean"?[!0,!1]:g.enum;return f`<select id=${I} name=${b} value=${A} onChange=${E}>
        <option value="">—</option>
        ${j.map(D=>f`<option value=${String(D)}>${String(D)}</option>`)}
      </select>`}return h==="list"||h==="json"?f`<textarea id=${I} name=${b} rows=${h==="json"?4:3} value=${A} onInput=${E}
        placeholder=${h==="list"?"one per line":"JSON"}></textarea>`:f`<input id=${I} name=${b} type=${h==="number"?"text":h}
      inputmode=${h==="number"?"decimal":void 0} value=${A} onInput=${E}
      autocomplete=${h==="password"?"new-password":"off"} />`};return f`<form class="schema-form" id=${s} onSubmit=${y} novalidate>
    ${d&&f`<div class="problem" role="alert">
      <strong>${d.title||"Refused"}</strong> ${d.detail}
      ${k.length>0&&f`<ul>${k.map(b=>f`<li>${b}</li>`)}</ul>`}
    </div>`}
    ${l.length===0&&f`<p class="muted">No parameters.</p>`}
    ${l.map(([b,g])=>f`<div class=${"field"+($[b]||m[b]?" invalid":"")}>
      <label for=${`${s}-${b}`}>${b}${i.has(b)?" *":""}</label>
      ${x(b,g)}
      ${g.description&&f`<small class="muted">${g.description}</small>`}
      ${m[b]&&f`<small class="error" data-field=${b}>${m[b]}</small>`}
      ${($[b]||[]).map(h=>f`<small class="error" data-field=${b}>${h}</small>`)}
    </div>`)}
    <button type="submit" disabled=${a}>${a?"\u2026":o}</button>
  </form>`}var P=t=>t==null?"":typeof t=="object"?JSON.stringify(t):String(t);function St(){let[t,e]=w(location.hash);return q(()=>{let n=()=>e(location.hash);return addEventListener("hashchange",n),()=>removeEventListener("hashchange",n)},[]),t.replace(/^#\/?/,"").split("/").filter(Boolean).map(decodeURIComponent)}function F({problem:t}){if(!t)return null;let e=typeof t=="string"?t:t.detail||t.title||JSON.stringify(t);return f`<div class="problem" role="alert">${e}</div>`}function xt({onSignedIn:t}){let[e,n]=w(!1),[o,s]=w(null),[r,i]=w(""),[l,p]=w({tenant:"",username:"",password:""});q(()=>{ot().then(n,()=>n(!1))},[]);let u=a=>{a.preventDefault(),Ye(r),t()},d=async a=>{a.preventDefault();let c=await et(l.tenant,l.username,l.password);c?s(c):t()},v=(a,c="text")=>f`<div class="field">
    <label for=${`login-${a}`}>${a}</label>
    <input id=${`login-${a}`} type=${c} value=${l[a]}
      autocomplete=${c==="password"?"current-password":"username"}
      onInput=${m=>p({...l,[a]:m.currentTarget.value})} />
  </div>`;return f`<main class="signin">
    <h1>Herald console</h1>
    <${F} problem=${o} />
    ${e&&f`<form id="password-login" onSubmit=${d}>
      <h2>Sign in</h2>
      ${v("tenant")} ${v("username")} ${v("password","password")}
      <button type="submit">Sign in</button>
    </form>`}
    <form id="token-login" onSubmit=${u}>
      <h2>Use a token</h2>
      <div class="field">
        <label for="login-token">Bearer token or API key</label>
        <textarea id="login-token" rows="4" value=${r} onInput=${a=>i(a.currentTarget.value)}></textarea>
      </div>
      <button type="submit">Use this token</button>
    </form>
    <p class="muted">The token is kept in this page's memory only: reloading signs out.</p>
  </main>`}function Ct({collections:t}){return f`<section>
    <h1>Collections</h1>
    <ul class="cards">
      ${[...t.values()].map(e=>f`<li>
        <a href=${`#/c/${e.app}/${e.doc}`}>${e.name}</a>
        <small class="muted">${e.commands.length} commands</small>
      </li>`)}
    </ul>
  </section>`}function Tt(t,e){let n=new URLSearchParams;for(let[o,{op:s,value:r}]of Object.entries(e.filters))r!==""&&n.append(o,`${s}.${r}`);return e.order&&n.set("order",`${e.order}.${e.direction}`),e.q&&n.set("q",e.q),n.set("limit","20"),e.cursor&&n.set("cursor",e.cursor),`${t.path}?${n}`}function Pt({collection:t}){let e=at(t),n={filters:{},order:"",direction:"asc",q:"",cursor:null},[o,s]=w(n),[r,i]=w(n),[l,p]=w(null),[u,d]=w([]),[v,a]=w(null);q(()=>{s(n),i(n),d([])},[t.name]),q(()=>{let _=!0;return O("GET",Tt(t,o)).then($=>{_&&($.status===200?(p($.body),a(null)):a($.body))}),()=>{_=!1}},[t.name,o]);let c=_=>{_.preventDefault(),d([]),s({...r,cursor:null})},m=(_,$,k)=>{let y=r.filters[_]||{op:t.filters.find(x=>x.name===_).operators[0],value:""};i({...r,filters:{...r.filters,[_]:{...y,[$]:k}}})};return f`<section>
    <header class="row">
      <h1>${t.name}</h1>
      <a class="button" href=${`#/c/${t.app}/${t.doc}/new`}>New</a>
    </header>
    <form class="query" onSubmit=${c}>
      ${t.searchable&&f`<div class="field"><label for="list-q">search</label>
        <input id="list-q" value=${r.q} onInput=${_=>i({...r,q:_.currentTarget.value})} /></div>`}
      ${t.filters.map(_=>f`<div class="field filter">
        <label for=${`filter-${_.name}`}>${_.name}</label>
        <select aria-label=${`${_.name} operator`} value=${(r.filters[_.name]||{}).op||_.operators[0]}
          onChange=${$=>m(_.name,"op",$.currentTarget.value)}>
          ${_.operators.map($=>f`<option value=${$}>${$}</option>`)}
        </select>
        <input id=${`filter-${_.name}`} value=${(r.filters[_.name]||{}).value||""}
          onInput=${$=>m(_.name,"value",$.currentTarget.value)} />
      </div>`)}
      ${t.sortable.length>0&&f`<div class="field"><label for="list-order">order</label>
        <select id="list-order" value=${r.order} onChange=${_=>i({...r,order:_.currentTarget.value})}>
          <option value="">newest last</option>
          ${t.sortable.map(_=>f`<option value=${_}>${_}</option>`)}
        </select>
        <select aria-label="direction" value=${r.direction} onChange=${_=>i({...r,direction:_.currentTarget.value})}>
          <option value="asc">ascending</option><option value="desc">descending</option>
        </select></div>`}
      <button type="submit">Apply</button>
    </form>
    <${F} problem=${v} />
    ${l&&f`<table class="documents">
      <thead><tr><th>id</th>${e.map(_=>f`<th>${_}</th>`)}<th>updated</th></tr></thead>
      <tbody>${l.data.map(_=>f`<tr>
        <td><a href=${`#/c/${t.app}/${t.doc}/${_.id}`}>${_.id.slice(0,8)}…</a></td>
        ${e.map($=>f`<td>${P(_[$])}</td>`)}
        <td>${P(_.updated_at)}</td>
      </tr>`)}</tbody>
    </table>
    ${l.data.length===0&&f`<p class="muted">Nothing matches.</p>`}
    <nav class="row pages">
      <button disabled=${u.length===0} onClick=${()=>{let _=u.slice(0,-1);s({...o,cursor:u[u.length-1]}),d(_)}}>Previous</button>
      <button disabled=${!l.has_more} onClick=${()=>{d([...u,o.cursor]),s({...o,cursor:l.next_cursor})}}>Next</button>
    </nav>`}
  </section>`}async function se(t,e,n,o,s){let r=await O(t,e,{body:n,headers:{prefer:"wait=10",...o}});return r.status>=200&&r.status<300?(s(r),null):typeof r.body=="object"?r.body:{detail:String(r.body)}}function At({collection:t}){let[e,n]=w(null),o=`#/c/${t.app}/${t.doc}`;return f`<section>
    <h1>New ${t.name}</h1>
    ${e&&f`<p class="notice">Created.</p>`}
    <${re} id="create-form" schema=${t.create} label="Create" submit=${s=>se("POST",t.path,s,{},r=>{n(r.body);let i=r.headers.get("herald-position");location.hash=`${o}/${r.body.id||""}${i?`?at=${encodeURIComponent(i)}`:""}`})} />
  </section>`}function Ot({history:t}){return t?f`<ol class="timeline">
    ${t.data.map(e=>f`<li>
      <div class="row"><strong>v${e.version}</strong> <span>${e.type}</span>
        <span class="muted">${e.time}</span></div>
      <div class="muted">by ${P(e.actor&&e.actor.sub)} (${P(e.actor&&e.actor.roles)}), command ${P(e.command_id)}</div>
      <table class="changes"><tbody>
        ${Object.entries(e.changes).map(([n,o])=>f`<tr>
          <td>${n}</td><td class="before">${P(o.before)}</td><td>→</td><td class="after">${P(o.after)}</td>
        </tr>`)}
      </tbody></table>
    </li>`)}
  </ol>`:null}function jt({collection:t,id:e,at:n}){let o=`${t.path}/${e}`,[s,r]=w(null),[i,l]=w(null),[p,u]=w(null),[d,v]=w(""),[a,c]=w(null),[m,_]=w(n),[$,k]=w(!1),y=async()=>{let h=d?`?as_of=${d}`:m?`?min_position=${encodeURIComponent(m)}`:"",[A,E]=await Promise.all([O("GET",`${o}${h}`),O("GET",`${o}/history?limit=200`)]);A.status===200?(r(A.body),l(A.headers.get("etag")),c(null)):c(A.body),u(E.status===200?E.body:null)};q(()=>{y()},[e,d,m]);let x=h=>{k(!1),_(h.headers.get("herald-position"))},b=s?Object.entries(s).filter(([h])=>h!=="id"):[],g=t.commands.filter(h=>!h.onCollection);return f`<section>
    <header class="row">
      <h1>${t.name} <small class="muted">${e}</small></h1>
      <a href=${`#/c/${t.app}/${t.doc}`}>back to the list</a>
    </header>
    <${F} problem=${a} />
    ${s&&f`<div class="row">
      <label for="as-of">as of version</label>
      <select id="as-of" value=${d} onChange=${h=>v(h.currentTarget.value)}>
        <option value="">current</option>
        ${(p?p.data:[]).map(h=>f`<option value=${String(h.version)}>${h.version}</option>`)}
      </select>
      ${d&&f`<span class="notice">as it was at version ${d}</span>`}
    </div>
    <dl class="document">${b.map(([h,A])=>f`<dt>${h}</dt><dd>${P(A)}</dd>`)}</dl>`}
    ${s&&!d&&f`<div class="actions">
      <button onClick=${()=>k(!$)}>${$?"Cancel":"Edit"}</button>
      <button class="danger" onClick=${()=>se("DELETE",o,void 0,i?{"if-match":i}:{},()=>{location.hash=`#/c/${t.app}/${t.doc}`}).then(c)}>Archive</button>
    </div>
    ${$&&t.patch&&f`<${re} id="edit-form" schema=${t.patch} initial=${s} patch
      label="Save" submit=${h=>se("PATCH",o,h,i?{"if-match":i}:{},x)} />`}
    ${g.map(h=>f`<details class="command">
      <summary>${h.name} <small class="muted">${h.summary}</small></summary>
      <${re} id=${`command-${h.name}`} schema=${h.params} label=${h.name}
        submit=${A=>se("POST",`${o}/${h.name}`,A,i?{"if-match":i}:{},x)} />
    </details>`)}`}
    <h2>History</h2>
    <${Ot} history=${p} />
  </section>`}function Nt({collections:t}){let[e,n]=w(""),[o,s]=w(""),[r,i]=w("now"),[l,p]=w(!1),[u,d]=w("not connected"),[v,a]=w([]),c=Ve(null);q(()=>()=>c.current&&c.current.abort(),[]);let m=async()=>{let _=new AbortController;c.current=_,p(!0);let $=e?`/v1/${e}/events`:"/v1/events",k=o.trim()?`?types=${encodeURIComponent(o.trim())}`:"",y=r==="start"?"AAAAAAAAAAAAAAAAAAAAAA":null,x=1,b=0;for(;!_.signal.aborted;){try{d(b++>0&&y?`connected, resumed after ${y}`:"connected");for await(let g of be(`${$}${k}`,{lastEventId:y,signal:_.signal})){if(x=1,g.id&&(y=g.id),g.event==="reauth")throw new Error("the token expired");g.event==="lagged"&&d("fell behind; resuming");let h;try{h=JSON.parse(g.data)}catch{h=g.data}a(A=>[{id:g.id,event:g.event,data:h},...A].slice(0,200))}}catch(g){if(_.signal.aborted)break;d(`disconnected (${g.message}); reconnecting in ${x} s`)}if(_.signal.aborted)break;await new Promise(g=>setTimeout(g,x*1e3)),x=Math.min(x*2,10)}p(!1),d("not connected")};return f`<section>
    <h1>Live events</h1>
    <form class="query" onSubmit=${_=>{_.preventDefault(),l?c.current.abort():m()}}>
      <div class="field"><label for="events-scope">collection</label>
        <select id="events-scope" value=${e} disabled=${l} onChange=${_=>n(_.currentTarget.value)}>
          <option value="">every collection</option>
          ${[...t.values()].map(_=>f`<option value=${`${_.app}/${_.doc}`}>${_.name}</option>`)}
        </select></div>
      <div class="field"><label for="events-types">types</label>
        <input id="events-types" placeholder="petstore.product.created,…" value=${o} disabled=${l}
          onInput=${_=>s(_.currentTarget.value)} /></div>
      <div class="field"><label for="events-from">from</label>
        <select id="events-from" value=${r} disabled=${l} onChange=${_=>i(_.currentTarget.value)}>
          <option value="now">now</option><option value="start">the start of the log</option>
        </select></div>
      <button type="submit" id="events-toggle">${l?"Disconnect":"Connect"}</button>
    </form>
    <p class="muted" id="events-status">${u}</p>
    <ol class="events">${v.map(_=>f`<li>
      <div class="row"><strong>${_.event}</strong><span class="muted">${P(_.data&&_.data.time)}</span></div>
      <code>${P(_.data&&_.data.data)}</code>
      <div class="muted">by ${P(_.data&&_.data.actor&&_.data.actor.sub)}, document ${P(_.data&&_.data.document_id)}</div>
    </li>`)}</ol>
  </section>`}function Et(t){let e=[];for(let n of String(t).split(`
`)){if(!n||n.startsWith("#"))continue;let o=/^([a-z_:]+)(\{[^}]*\})?\s+([^\s]+)/.exec(n);o&&e.push({name:o[1],labels:o[2]||"",value:Number(o[3])})}return e}var qt=[["herald_http_connections_open","HTTP connections open"],["herald_projection_lag_events","projection lag (events)"],["herald_projection_lag_seconds","projection lag (seconds)"],["herald_relay_lag_events","relay lag (events)"],["herald_parked_events","parked events"],["herald_task_runs","task runs by state"],["herald_role_down","roles down"],["herald_event_streams_open","event streams open"],["herald_api_version_calls_total","calls per API version"]];function Dt(){let[t,e]=w(null),[n,o]=w(null),[s,r]=w([]),[i,l]=w(null),[p,u]=w(0);q(()=>{let c=!0;return Promise.all([O("GET","/v1/admin/projections"),O("GET","/v1/admin/tasks/dead?limit=50"),O("GET","/metrics")]).then(([m,_,$])=>{if(c){if(m.status!==200){l(m.status===403?"Operations are for the operators (admins of the operator tenant).":m.body);return}e(m.body.data),o(_.status===200?_.body.data:[]),r($.status===200?Et($.body):[])}}),()=>{c=!1}},[p]);let d=t&&t.some(c=>c.state==="building");q(()=>{if(!d)return;let c=setTimeout(()=>u(m=>m+1),1e3);return()=>clearTimeout(c)},[d,p]);let v=async c=>{let m=await O("POST",`/v1/admin/projections/${encodeURIComponent(c)}/rebuild`);m.status!==202&&l(m.body),u(_=>_+1)},a=async c=>{let m=await O("POST",`/v1/admin/tasks/dead/${encodeURIComponent(c)}/retry`);m.status!==202&&l(m.body),u(_=>_+1)};return i&&!t?f`<section><h1>Operations</h1><${F} problem=${i} /></section>`:f`<section>
    <h1>Operations</h1>
    <${F} problem=${i} />
    <h2>Views</h2>
    <table class="projections" id="projections">
      <thead><tr><th>view</th><th>version</th><th>state</th><th>lag</th><th>progress</th><th></th></tr></thead>
      <tbody>${(t||[]).map(c=>f`<tr key=${`${c.name}.${c.version}`} data-state=${c.state}>
        <td>${c.name}</td><td>${c.version}</td><td class="state">${c.state}</td>
        <td>${P(c.lag&&c.lag.events)} events, ${P(c.lag&&c.lag.seconds)} s</td>
        <td>${c.rebuild?f`<progress max="100" value=${c.rebuild.percent}></progress> ${c.rebuild.done}/${c.rebuild.total}`:P(c.events_applied)}</td>
        <td>${c.state==="active"&&f`<button data-rebuild=${c.name} onClick=${()=>v(c.name)} disabled=${d}>Rebuild</button>`}</td>
      </tr>`)}</tbody>
    </table>
    <h2>Dead tasks</h2>
    ${n&&n.length===0&&f`<p class="muted">None.</p>`}
    ${n&&n.length>0&&f`<table><thead><tr><th>task</th><th>tenant</th><th>attempts</th><th>error</th><th></th></tr></thead>
      <tbody>${n.map(c=>f`<tr>
        <td>${c.name}</td><td>${c.tenant}</td><td>${c.attempts}/${c.max_attempts}</td><td>${P(c.last_error)}</td>
        <td><button onClick=${()=>a(c.id)}>Retry</button></td>
      </tr>`)}</tbody></table>`}
    <h2>At a glance</h2>
    <table class="metrics"><tbody>
      ${qt.map(([c,m])=>{let _=s.filter($=>$.name===c);return f`<tr><th>${m}</th><td>${_.length===0?"\u2014":_.map($=>f`<div>${$.labels} ${$.value}</div>`)}</td></tr>`})}
    </tbody></table>
    <button onClick=${()=>u(c=>c+1)}>Refresh</button>
  </section>`}function Ht(){let[t,e]=w($e()),[n,o]=w(null),s=St();q(()=>{t&&O("GET","/v1/openapi.json",{anonymous:!0}).then($=>o($.body))},[t]);let r=ve(()=>n?st(n):new Map,[n]);if(!t)return f`<${xt} onSignedIn=${()=>e($e())} />`;let[i,l,p,u]=s,d=i==="c"?r.get(`${l}/${p}`):null,[v,a]=(u||"").split("?"),c=new URLSearchParams(a||"").get("at"),m;n?i==="events"?m=f`<${Nt} collections=${r} />`:i==="ops"?m=f`<${Dt} />`:i==="c"&&!d?m=f`<${F} problem="No such collection." />`:d&&v==="new"?m=f`<${At} collection=${d} />`:d&&v?m=f`<${jt} collection=${d} id=${v} at=${c} />`:d?m=f`<${Pt} collection=${d} />`:m=f`<${Ct} collections=${r} />`:m=f`<p class="muted">Loading…</p>`;let _=t.claims||{};return f`<div class="layout">
    <nav class="top">
      <a href="#/">Collections</a>
      <a href="#/events">Live events</a>
      <a href="#/ops">Operations</a>
      <span class="who">${P(_.sub)}${_.tid?` @ ${_.tid}`:""} ${P(_.roles)}</span>
      <button onClick=${async()=>{await nt(),e(null)}}>Sign out</button>
    </nav>
    <main>${m}</main>
  </div>`}pe(f`<${Ht} />`,document.getElementById("console"));
