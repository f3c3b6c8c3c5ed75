<%--
  /jw/web/console/setting/license: login required. Shows <span id="systemKey">EE-...</span> and
  <span id="licenseStatus">activated|none</span>; a POST of the form field "license" activates a
  license for this node's key (accepted when it contains the key; stored as license-<key>.txt).
--%><%@ page session="false" contentType="text/html; charset=UTF-8" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    String ctx = request.getContextPath();
    if (currentUser(request) == null) {
        response.sendRedirect(ctx + "/web/login");
        return;
    }
    String version = standinVersion(application);
    String major = majorVersion(version);
    Datasource ds = readDatasource();
    String mac = macAddress();
    String key = systemKey(mac, ds.profile, major);
    String message = null;
    String error = null;
    if ("POST".equals(request.getMethod())) {
        String submitted = request.getParameter("license");
        submitted = submitted == null ? "" : submitted.trim();
        if (submitted.isEmpty()) {
            error = "Invalid license: the license is empty.";
        } else if (!submitted.contains(key)) {
            error = "Invalid license: it is not for this server's system key " + key + ".";
        } else {
            try {
                writeAtomically(licenseFile(key), submitted + "\n");
                message = "License activated for system key " + key + ".";
            } catch (IOException e) {
                error = "Cannot store the license: " + e.getMessage();
            }
        }
    }
    String stored = readStoredLicense(key);
    response.setHeader("Cache-Control", "no-store");
%><!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Joget DX - License (stand-in)</title>
<style>body{font-family:sans-serif;margin:3em}th{text-align:left;padding-right:1em}.error{color:#b00}.success{color:#070}textarea{width:40em;height:6em}</style>
</head>
<body>
<h1>License</h1>
<% if (message != null) { %><div id="licenseMessage" class="success"><%= html(message) %></div><% } %>
<% if (error != null) { %><div id="licenseError" class="error"><%= html(error) %></div><% } %>
<table id="licenseInfo">
<tr><th>System Key</th><td><span id="systemKey"><%= html(key) %></span></td></tr>
<tr><th>Status</th><td><span id="licenseStatus"><%= stored != null ? "activated" : "none" %></span>
  - <%= stored != null ? "Licensed" : "No license installed" %></td></tr>
<tr><th>Edition</th><td>Enterprise Edition</td></tr>
<tr><th>Version</th><td><span id="version"><%= html(version) %></span></td></tr>
<tr><th>Node</th><td><span id="nodeName"><%= html(nodeName()) %></span></td></tr>
</table>
<% if (stored != null) { %><h2>Installed license</h2>
<pre id="licenseText"><%= html(stored) %></pre><% } %>
<h2>Activate a license</h2>
<form id="licenseForm" method="post" action="<%= html(ctx) %>/web/console/setting/license">
<textarea id="license" name="license"></textarea><br>
<input type="submit" id="submit" value="Submit">
</form>
<h2>Stand-in details</h2>
<p>The key is "EE-" + the first 32 hex digits of SHA-256("mac|profile|major|edition"), uppercase.
Real Joget's algorithm is not public.</p>
<table id="keyInputs">
<tr><th>MAC address</th><td><span id="keyMac"><%= html(mac) %></span></td></tr>
<tr><th>Datasource profile</th><td><span id="keyProfile"><%= html(ds.profile) %></span></td></tr>
<tr><th>Major version</th><td><span id="keyMajor"><%= html(major) %></span></td></tr>
<tr><th>Edition</th><td><span id="keyEdition"><%= html(STANDIN_EDITION) %></span></td></tr>
</table>
<p><a id="home" href="<%= html(ctx) %>/web/console/home">Back to the console</a></p>
</body>
</html>
